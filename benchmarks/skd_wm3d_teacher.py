"""Is the DSN a better detector than the MDN it teaches?  Scores both branches of a trained full-method SKD-WM3D
run (``options.self_distillation: true``) on the validation split: the MDN from the image, the DSN from the image
and the depth estimate (the only evaluation that gives a branch the depth map). A transfer can only help the MDN
where its teacher is better.

Run: ``python -m benchmarks.skd_wm3d_teacher RUN_DIR`` (a run folder of ``distill3d train skd_wm3d``; road world).
"""

import sys

import torch
from torch.utils.data import DataLoader

from distill3d.cli.methods import load_trained
from distill3d.methods.skd_wm3d.data import EVAL_KEYS, road_split

KEY = "ap_bev_r40_moderate_05"


def main() -> None:
    torch.set_num_threads(2)
    run = load_trained(sys.argv[1])
    task, model = run.task, run.model
    o = task.options
    if model.dsn is None or o.dataset != "road":
        raise SystemExit(f"{sys.argv[1]}: needs a road-world run with the DSN (options.self_distillation: true)")
    val = road_split("val", o.val_size, o.data_seed, o.image_size, (*EVAL_KEYS, "depth_estimate"), o.cache,
                     o.difficulty)
    batches = list(DataLoader(val, batch_size=32, collate_fn=task.collate))
    mdn = task.evaluate(model, batches)
    dsn = task.evaluate(model, batches, branch="dsn")
    print(f"val Car AP_BEV@0.5 R40 Moderate: MDN (image) {mdn[KEY]:.1f}, DSN (image + depth estimate) {dsn[KEY]:.1f}; "
          f"AP_2D@0.7: MDN {mdn['Car_2D_AP40_moderate_strict']:.1f}, DSN {dsn['Car_2D_AP40_moderate_strict']:.1f}")


if __name__ == "__main__":
    main()
