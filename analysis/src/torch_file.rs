//! Reads PyTorch `state_dict` checkpoints into candle tensors, so published
//! weights load as they were released. Both of `torch.save`'s formats: the
//! zip archive of PyTorch ≥ 1.6 (through candle's reader) and the legacy
//! stream of earlier versions (HD-BET's 2019 checkpoints, pickled by
//! Python 2), read here: four pickles (magic number, protocol, system
//! information, the state dict with storages as persistent ids), the list
//! of storage keys, then each storage as an element count and raw
//! little-endian data.
//!
//! The pickle machine below knows only the opcodes these files use and
//! builds plain values; it never calls anything, so a hostile file can
//! produce an error but not run code.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{bail, Device, Result, Tensor};

/// 0x1950a86a20f9469cfc6c, as the pickle's little-endian LONG1 bytes.
const LEGACY_MAGIC: &[u8] = b"\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Mark,
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, little-endian two's complement.
    BigInt(Vec<u8>),
    Float(f64),
    Str(String),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// `callable(*args)`, recorded, not run.
    Call(Box<Value>, Box<Value>),
    Persistent(Box<Value>),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            bail!("checkpoint is truncated at byte {}", self.pos);
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn line(&mut self) -> Result<String> {
        let rest = &self.bytes[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            bail!("checkpoint is truncated in a name");
        };
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn string(&mut self, n: usize) -> Result<Value> {
        Ok(Value::Str(
            String::from_utf8_lossy(self.take(n)?).into_owned(),
        ))
    }

    /// One pickle, up to its STOP.
    fn pickle(&mut self) -> Result<Value> {
        let mut stack: Vec<Value> = Vec::new();
        let mut memo: HashMap<u32, Value> = HashMap::new();
        fn pop(stack: &mut Vec<Value>) -> Result<Value> {
            match stack.pop() {
                Some(v) => Ok(v),
                None => bail!("checkpoint pickle pops an empty stack"),
            }
        }
        fn to_mark(stack: &mut Vec<Value>) -> Result<Vec<Value>> {
            let Some(at) = stack.iter().rposition(|v| *v == Value::Mark) else {
                bail!("checkpoint pickle has no mark");
            };
            let items = stack.split_off(at + 1);
            stack.pop();
            Ok(items)
        }
        fn set_items(target: &mut Value, items: Vec<Value>) -> Result<()> {
            let Value::Dict(d) = target else {
                bail!("checkpoint pickle sets items on a non-dict");
            };
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                d.push((k, v));
            }
            Ok(())
        }
        fn append(target: &mut Value, items: Vec<Value>) -> Result<()> {
            let Value::List(l) = target else {
                bail!("checkpoint pickle appends to a non-list");
            };
            l.extend(items);
            Ok(())
        }
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // protocol
                }
                b'.' => return pop(&mut stack),
                b'(' => stack.push(Value::Mark),
                b'N' => stack.push(Value::None),
                0x88 => stack.push(Value::Bool(true)),
                0x89 => stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.u8()?;
                    stack.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.u16()?;
                    stack.push(Value::Int(v as i64))
                }
                b'J' => {
                    let v = self.u32()? as i32;
                    stack.push(Value::Int(v as i64))
                }
                0x8a => {
                    let n = self.u8()? as usize;
                    let b = self.take(n)?;
                    if n > 8 {
                        stack.push(Value::BigInt(b.to_vec()));
                        continue;
                    }
                    let mut v: i64 = 0;
                    for (i, &x) in b.iter().enumerate() {
                        v |= (x as i64) << (8 * i);
                    }
                    if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 {
                        v -= 1i64 << (8 * n); // two's complement, sign-extended
                    }
                    stack.push(Value::Int(v))
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.take(8)?.try_into().unwrap());
                    stack.push(Value::Float(v))
                }
                b'U' => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    stack.push(v)
                }
                b'T' | b'X' => {
                    let n = self.u32()? as usize;
                    let v = self.string(n)?;
                    stack.push(v)
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.string(n)?;
                    stack.push(v)
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    stack.push(Value::Global(module, name))
                }
                b')' => stack.push(Value::Tuple(vec![])),
                b't' => {
                    let items = to_mark(&mut stack)?;
                    stack.push(Value::Tuple(items))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if stack.len() < n {
                        bail!("checkpoint pickle pops an empty stack");
                    }
                    let items = stack.split_off(stack.len() - n);
                    stack.push(Value::Tuple(items))
                }
                b']' => stack.push(Value::List(vec![])),
                b'l' => {
                    let items = to_mark(&mut stack)?;
                    stack.push(Value::List(items))
                }
                b'a' => {
                    let v = pop(&mut stack)?;
                    append(stack.last_mut().unwrap_or(&mut Value::None), vec![v])?
                }
                b'e' => {
                    let items = to_mark(&mut stack)?;
                    append(stack.last_mut().unwrap_or(&mut Value::None), items)?
                }
                b'}' => stack.push(Value::Dict(vec![])),
                b'd' => {
                    let items = to_mark(&mut stack)?;
                    let mut d = Value::Dict(vec![]);
                    set_items(&mut d, items)?;
                    stack.push(d)
                }
                b's' => {
                    let v = pop(&mut stack)?;
                    let k = pop(&mut stack)?;
                    set_items(stack.last_mut().unwrap_or(&mut Value::None), vec![k, v])?
                }
                b'u' => {
                    let items = to_mark(&mut stack)?;
                    set_items(stack.last_mut().unwrap_or(&mut Value::None), items)?
                }
                b'q' => {
                    let id = self.u8()? as u32;
                    memo.insert(id, stack.last().cloned().unwrap_or(Value::None));
                }
                b'r' => {
                    let id = self.u32()?;
                    memo.insert(id, stack.last().cloned().unwrap_or(Value::None));
                }
                b'h' | b'j' => {
                    let id = if op == b'h' {
                        self.u8()? as u32
                    } else {
                        self.u32()?
                    };
                    match memo.get(&id) {
                        Some(v) => stack.push(v.clone()),
                        None => bail!("checkpoint pickle refers to missing memo {id}"),
                    }
                }
                0x94 => {
                    let id = memo.len() as u32;
                    memo.insert(id, stack.last().cloned().unwrap_or(Value::None));
                }
                b'Q' => {
                    let id = pop(&mut stack)?;
                    stack.push(Value::Persistent(Box::new(id)))
                }
                b'R' | 0x81 => {
                    let args = pop(&mut stack)?;
                    let callable = pop(&mut stack)?;
                    stack.push(call(callable, args))
                }
                b'b' => {
                    // BUILD sets an object's state: a state dict's
                    // `_metadata`, which loading does not need.
                    pop(&mut stack)?;
                }
                0x95 => {
                    self.take(8)?; // FRAME
                }
                other => bail!("checkpoint pickle uses unsupported opcode 0x{other:02x}"),
            }
        }
    }
}

/// Records `callable(args)`; an `OrderedDict` becomes the dict it builds.
fn call(callable: Value, args: Value) -> Value {
    if callable == Value::Global("collections".into(), "OrderedDict".into()) {
        let mut items = vec![];
        if let Value::Tuple(mut a) = args {
            if let Some(Value::List(pairs)) = a.pop() {
                for p in pairs {
                    if let Value::List(mut kv) | Value::Tuple(mut kv) = p {
                        if kv.len() == 2 {
                            let v = kv.pop().unwrap();
                            items.push((kv.pop().unwrap(), v));
                        }
                    }
                }
            }
        }
        return Value::Dict(items);
    }
    Value::Call(Box::new(callable), Box::new(args))
}

fn ints(v: &Value, what: &str) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items
            .iter()
            .map(|i| match i {
                Value::Int(x) if *x >= 0 => Ok(*x as usize),
                other => bail!("checkpoint {what}: {other:?} is not a size"),
            })
            .collect(),
        other => bail!("checkpoint {what}: {other:?} is not a tuple"),
    }
}

/// A tensor's place in a storage.
struct TensorRef {
    storage: String,
    offset: usize,
    size: Vec<usize>,
    stride: Vec<usize>,
}

fn tensor_ref(v: &Value) -> Result<Option<TensorRef>> {
    let Value::Call(callable, args) = v else {
        return Ok(None);
    };
    let Value::Global(module, name) = &**callable else {
        return Ok(None);
    };
    if module != "torch._utils" || !name.starts_with("_rebuild_tensor") {
        return Ok(None);
    }
    let Value::Tuple(a) = &**args else {
        bail!("checkpoint tensor has no arguments");
    };
    if a.len() < 4 {
        bail!("checkpoint tensor has {} arguments", a.len());
    }
    let Value::Persistent(id) = &a[0] else {
        bail!("checkpoint tensor does not name its storage");
    };
    let Value::Tuple(id) = &**id else {
        bail!("checkpoint storage id is not a tuple");
    };
    match (id.get(1), id.get(2)) {
        (Some(Value::Global(_, class)), Some(Value::Str(key))) if class == "FloatStorage" => {
            let Value::Int(offset) = a[1] else {
                bail!("checkpoint tensor offset is not an integer");
            };
            Ok(Some(TensorRef {
                storage: key.clone(),
                offset: offset.max(0) as usize,
                size: ints(&a[2], "tensor size")?,
                stride: ints(&a[3], "tensor stride")?,
            }))
        }
        (Some(Value::Global(_, class)), _) => {
            bail!("checkpoint tensor in a {class}: only float32 weights are read")
        }
        _ => bail!("checkpoint storage id is malformed"),
    }
}

/// The tensors of a checkpoint's state dict, by name, in file order.
/// Integer entries (BatchNorm's `num_batches_tracked`) are left out.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path)
        .map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))?;
    if bytes.starts_with(b"PK\x03\x04") {
        return candle_core::pickle::read_all(path);
    }
    read_legacy(&bytes).map_err(|e| candle_core::Error::Msg(format!("{}: {e}", path.display())))
}

fn read_legacy(bytes: &[u8]) -> Result<Vec<(String, Tensor)>> {
    let mut r = Reader { bytes, pos: 0 };
    if r.pickle()? != Value::BigInt(LEGACY_MAGIC.to_vec()) {
        bail!("not a PyTorch checkpoint");
    }
    r.pickle()?; // protocol version
    r.pickle()?; // system information (little-endian was checked by loading)
    let Value::Dict(entries) = r.pickle()? else {
        bail!("checkpoint is not a state dict");
    };
    let keys = match r.pickle()? {
        Value::List(keys) => keys,
        _ => bail!("checkpoint has no storage list"),
    };
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in keys {
        let Value::Str(key) = key else {
            bail!("checkpoint storage key is not a string");
        };
        let count = i64::from_le_bytes(r.take(8)?.try_into().unwrap());
        let Some(len) = usize::try_from(count).ok().and_then(|c| c.checked_mul(4)) else {
            bail!("checkpoint storage {key} declares {count} elements");
        };
        storages.insert(key, r.take(len)?);
    }
    let mut out = vec![];
    for (name, value) in entries {
        let Value::Str(name) = name else { continue };
        let Some(t) = tensor_ref(&value)? else {
            continue;
        };
        let Some(data) = storages.get(&t.storage) else {
            bail!("{name}: storage {} is missing", t.storage);
        };
        if t.size.len() != t.stride.len() {
            bail!("{name}: size and stride disagree");
        }
        let n: usize = t.size.iter().product();
        let mut values = Vec::with_capacity(n);
        let mut index = vec![0usize; t.size.len()];
        for _ in 0..n {
            let at = t.offset
                + index
                    .iter()
                    .zip(&t.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            let Some(b) = data.get(4 * at..4 * at + 4) else {
                bail!("{name}: reaches past its storage");
            };
            values.push(f32::from_le_bytes(b.try_into().unwrap()));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.size[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        out.push((name, Tensor::from_vec(values, t.size, &Device::Cpu)?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A legacy checkpoint written by hand the way `torch.save` (≤ 1.5,
    /// Python 2 pickles) wrote them: one 2×3 tensor viewing a storage
    /// transposed, at an offset.
    fn legacy_file() -> Vec<u8> {
        let mut f = vec![];
        // magic number, protocol version, system information
        f.extend(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
        f.extend(b"\x80\x02M\xe9\x03.");
        f.extend(b"\x80\x02}q\x00.");
        // OrderedDict([["w", _rebuild_tensor(("storage", FloatStorage, "k1", "cpu", 7, None), 1, (2, 3), (1, 2))]])
        f.extend(b"\x80\x02ccollections\nOrderedDict\nq\x01]q\x02(]q\x03(U\x01wq\x04");
        f.extend(b"ctorch._utils\n_rebuild_tensor\nq\x05((U\x07storagectorch\nFloatStorage\n");
        f.extend(b"U\x02k1U\x03cpu\x8a\x01\x07Nt");
        f.extend(b"QK\x01(\x8a\x01\x02\x8a\x01\x03t(\x8a\x01\x01\x8a\x01\x02ttRq\x06ee\x85Rq\x07.");
        f.extend(b"\x80\x02]q\x00U\x02k1a.");
        f.extend(7i64.to_le_bytes());
        for v in 0..7 {
            f.extend((v as f32).to_le_bytes());
        }
        f
    }

    #[test]
    fn reads_a_legacy_checkpoint_with_strided_views() {
        let t = read_legacy(&legacy_file()).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].0, "w");
        // element (i, j) = storage[1 + i + 2j]
        assert_eq!(
            t[0].1.to_vec2::<f32>().unwrap(),
            vec![vec![1.0, 3.0, 5.0], vec![2.0, 4.0, 6.0]]
        );
    }

    #[test]
    fn refuses_truncated_and_oversized_storages() {
        let f = legacy_file();
        let err = read_legacy(&f[..f.len() - 3]).unwrap_err().to_string();
        assert!(err.contains("truncated"), "{err}");
        let mut huge = f.clone();
        let at = f.len() - 7 * 4 - 8;
        huge[at..at + 8].copy_from_slice(&(i64::MAX / 2).to_le_bytes());
        assert!(read_legacy(&huge).is_err());
        assert!(read_legacy(b"\x80\x02K\x01.").is_err());
    }
}
