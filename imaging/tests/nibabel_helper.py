"""nibabel's view of NIfTI files, for Gyri's comparison tests.

  describe IN RAW     print {shape, affine, dtype} as JSON; write the voxels of
                      volume 0 as little-endian float32 to RAW
  variants IN OUTDIR  write IN's first volume in the encodings Gyri must read
                      (NIfTI-2, big-endian, scaled int16, uint8, 4D, qform
                      only, no transform) and print what each should read as
"""
import json, sys
import numpy as np
import nibabel as nib


def describe(path, raw):
    img = nib.load(path)
    data = img.get_fdata(dtype=np.float64)  # scaled by scl_slope/scl_inter
    if data.ndim == 4:
        data = data[..., 0]
    np.asarray(data, dtype="<f4").ravel(order="F").tofile(raw)
    print(json.dumps({
        "shape": list(img.shape[:3]),
        "affine": img.affine.tolist(),
        "dtype": str(img.get_data_dtype()),
    }))


def variants(path, outdir):
    src = nib.load(path)
    data = np.asanyarray(src.dataobj).astype(np.float32)
    affine = src.affine
    out = {}

    def save(name, img):
        file = f"{outdir}/{name}"
        nib.save(img, file)
        out[name] = nib.load(file).affine.tolist()

    save("nifti2.nii", nib.Nifti2Image(data, affine))
    be = nib.Nifti1Image(data.astype(">f4"), affine, nib.Nifti1Header(endianness=">"))
    save("bigendian.nii", be)
    scaled = nib.Nifti1Image(data, affine)
    scaled.set_data_dtype(np.int16)
    save("int16_scaled.nii.gz", scaled)
    u8 = nib.Nifti1Image(np.clip(data, 0, 255).astype(np.uint8), affine)
    save("uint8.nii", u8)
    four = nib.Nifti1Image(np.stack([data, data * 2], axis=-1), affine)
    save("4d.nii.gz", four)
    qonly = nib.Nifti1Image(data, None)
    qonly.set_qform(affine, code=1)
    qonly.set_sform(None, code=0)
    save("qform_only.nii", qonly)
    print(json.dumps(out))


if __name__ == "__main__":
    {"describe": describe, "variants": variants}[sys.argv[1]](*sys.argv[2:])
