"""The ``distill3d`` command line: train, eval, report, list, kitti-eval, demo.

User errors (bad config, missing file, malformed dataset file, NaN loss) print one line on stderr and exit
with status 2 (1 for a non-finite loss, 130 for Ctrl-C), without a traceback; so do operating-system errors
(disk full, permission denied), naming the file. Output paths are checked before any work starts. Set
``DISTILL3D_DEBUG=1`` for the traceback.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer

from distill3d.cli import demos
from distill3d.cli.demos import DEMOS
from distill3d.errors import ConfigError, Distill3dError, NonFiniteLossError, RunInterruptedError
from distill3d.files import check_output_dir, check_output_file

app = typer.Typer(
    name="distill3d",
    help="Cross-modal knowledge transfer for 3D vision: train, evaluate and report distillation methods.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _echo(message: str) -> None:
    typer.echo(message)


# ------------------------------------------------------------------------------------------------ train
#: What may change when a run is resumed (recorded in its config.yaml); anything else needs a new run.
RESUME_OVERRIDABLE = ("train.",)


def _resume_overrides(config: str, overrides: list[str]) -> list[str]:
    """The overrides of ``train --resume`` (typer puts the first one in CONFIG); a recipe or file is refused."""
    if config and "=" not in config:
        raise ConfigError(
            f"command line: --resume continues a run with its own config.yaml; do not also give '{config}' "
            "(start a new run with it instead)"
        )
    overrides = [config, *overrides] if config else list(overrides)
    for text in overrides:
        if not text.split("=", 1)[0].strip().startswith(RESUME_OVERRIDABLE):
            raise ConfigError(
                f"command line override '{text}': only train.* settings may change when resuming "
                "(the model and data must stay those of the checkpoint); start a new run instead"
            )
    return overrides


def prepare_run(config: str, overrides: list[str], resume: Path | None) -> tuple[Any, Any, Any, Path]:
    """Validate the config, check the run folder and build the task, before anything is written to disk.

    Returns (run config with resolved options, method module, task, run folder).
    """
    from distill3d.cli.methods import load_method, resolve_config_path
    from distill3d.engine.config import config_location, load_run_config, validate_section

    if resume is not None:
        overrides = _resume_overrides(config, overrides)
        if not Path(resume).is_dir():
            raise Distill3dError(f"{resume}: cannot resume, no such run folder")
        config_path = Path(resume) / "config.yaml"
        if not config_path.is_file():
            raise Distill3dError(f"{resume}: cannot resume, no config.yaml in that folder")
        if not (Path(resume) / "last.pt").is_file():
            raise Distill3dError(f"{resume}: cannot resume, no last.pt in that folder (no epoch finished)")
    else:
        config_path = resolve_config_path(config)
    run_config = load_run_config(config_path, overrides)
    method = load_method(run_config.method)
    options = validate_section(method.Options, run_config.options, "options", source=str(config_path),
                               overrides=overrides)
    run_config = run_config.model_copy(update={"options": options.model_dump(mode="json")})
    if resume is not None:
        run_dir = Path(resume)
    else:
        name = run_config.name or f"{run_config.method}-{time.strftime('%Y%m%d-%H%M%S')}"
        if not name.strip() or Path(name).name != name or name in {".", ".."}:
            raise ConfigError(f"{config_location(('name',), config_path, overrides)}config key 'name': a run name must "
                              f"be one folder name, got {name!r}")
        run_dir = run_config.out_dir / name
        if (run_dir / "last.pt").exists():
            raise Distill3dError(f"{run_dir} already holds a run; pass --resume {run_dir} or choose another name")
    check_output_dir(run_dir, "run folder")
    task = method.build_task(options, run_config.seed)
    return run_config, method, task, run_dir


@app.command()
def train(
    config: Annotated[str, typer.Argument(help="YAML run config, or the name of a built-in recipe")] = "",
    overrides: Annotated[list[str] | None, typer.Argument(help="dotted overrides, e.g. train.epochs=3")] = None,
    resume: Annotated[Path | None, typer.Option(help="continue the run in this folder from last.pt")] = None,
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Train a method from a run config (works under torchrun for multi-process DDP)."""
    from distill3d.engine.config import config_to_yaml
    from distill3d.engine.distributed import init_distributed, shutdown_distributed
    from distill3d.engine.report import write_run_report
    from distill3d.engine.trainer import Trainer

    if not config and resume is None:
        raise ConfigError("give a CONFIG (file or recipe name) or --resume RUN_DIR")
    run_config, _, task, run_dir = prepare_run(config, overrides or [], resume)
    resumed_with = ([config] if config else []) + list(overrides or []) if resume is not None else []
    dist_info = init_distributed()
    if resumed_with and dist_info.is_main:  # the run folder records what the run really used
        from distill3d.files import atomic_write_text

        atomic_write_text(run_dir / "config.yaml", config_to_yaml(run_config))
        _echo(f"resuming {run_dir} with {' '.join(resumed_with)} (recorded in config.yaml)")
    if dist_info.enabled and run_config.name is None and resume is None:
        import torch.distributed as dist

        shared = [str(run_dir)]
        dist.broadcast_object_list(shared, src=0)
        run_dir = Path(shared[0])
    try:
        trainer = Trainer(run_config.train, run_dir, seed=run_config.seed, dist_info=dist_info,
                          config_yaml=config_to_yaml(run_config), config_dump=run_config.model_dump(mode="json"),
                          progress=progress)
        result = trainer.fit(task, resume=resume is not None)
    finally:
        shutdown_distributed()
    if dist_info.is_main:
        report = write_run_report(run_dir)
        _echo(f"trained {result.epochs_completed}/{run_config.train.epochs} epochs → {run_dir}")
        if result.last_metrics:
            _echo("last validation: " + ", ".join(f"{k}={v:.4f}" for k, v in result.last_metrics.items()))
        _echo(f"report: {report.markdown_path}" + (f", curves: {report.plot_path}" if report.plot_path else ""))


# ------------------------------------------------------------------------------------------------- eval
def evaluate_checkpoint(run_or_checkpoint: Path) -> dict[str, dict[str, float]]:
    """Rebuild the task of a checkpoint and evaluate it on every evaluation split it offers."""
    from distill3d.cli.methods import load_trained
    from distill3d.engine.trainer import Trainer

    run = load_trained(run_or_checkpoint)
    trainer = Trainer(run.config.train, run.checkpoint.parent, seed=run.config.seed, progress=False)
    splits = run.task.test_sets()
    return {name: trainer.evaluate(run.task, run.model, data) for name, data in splits.items() if data is not None}


@app.command("eval")
def eval_command(
    run_or_checkpoint: Annotated[Path, typer.Argument(help="run folder (uses best.pt, else last.pt) or .pt file")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")] = False,
) -> None:
    """Evaluate a trained checkpoint on the method's evaluation splits."""
    results = evaluate_checkpoint(run_or_checkpoint)
    if as_json:
        _echo(json.dumps(results, indent=2))
        return
    keys = sorted({k for metrics in results.values() for k in metrics})
    _echo("| split | " + " | ".join(keys) + " |")
    _echo("|---" * (len(keys) + 1) + "|")
    for split, metrics in results.items():
        _echo(f"| {split} | " + " | ".join(f"{metrics[k]:.4f}" if k in metrics else "" for k in keys) + " |")


@app.command()
def report(run_dir: Annotated[Path, typer.Argument(help="a run folder written by distill3d train")]) -> None:
    """Write report.md (tables) and curves.png (learning curves) for a run and print the markdown."""
    from distill3d.engine.report import write_run_report

    result = write_run_report(run_dir)
    _echo(result.markdown)
    _echo(f"written: {result.markdown_path}" + (f", {result.plot_path}" if result.plot_path else ""))


WORLD_DESCRIPTIONS = {
    "shapes": "16 part-based object categories; renders with Pascal3D+ viewpoints, point clouds with parts",
    "hands": "21-joint hands in FreiHAND order, rendered with K, 3D joints and scale",
    "road": "KITTI-like road scenes: cars, pedestrians, cyclists; 2D/3D boxes, depth, estimated depth",
}
DATASET_DESCRIPTIONS = {
    "pascal3d": "distill3d.data.pascal3d.Pascal3DDataset(root, split) — Pascal3D+ viewpoints",
    "objectnet3d": "distill3d.data.objectnet3d.ObjectNet3DDataset(root, split) — ObjectNet3D viewpoints",
    "kitti": "distill3d.data.kitti_io (labels, results, calib; distill3d kitti-eval)",
}


@app.command("list")
def list_command() -> None:
    """List the methods, built-in recipes, worlds and real-dataset loaders."""
    from distill3d.cli.methods import METHOD_MODULES, list_recipes, load_method

    _echo("methods:")
    for name in sorted(METHOD_MODULES):
        _echo(f"  {name:24s} {load_method(name).DESCRIPTION}")
    _echo("recipes (distill3d train NAME):")
    for name, path in list_recipes().items():
        _echo(f"  {name:24s} {path}")
    _echo("worlds (distill3d world preview|export NAME):")
    for name, what in WORLD_DESCRIPTIONS.items():
        _echo(f"  {name:24s} {what}")
    _echo("real datasets (read from a local path):")
    for name, what in DATASET_DESCRIPTIONS.items():
        _echo(f"  {name:24s} {what}")


@app.command("kitti-eval")
def kitti_eval(
    gt_label_dir: Annotated[Path, typer.Argument(help="folder of KITTI label_2 files")],
    result_dir: Annotated[Path, typer.Argument(help="folder of result files (16 columns, last = score)")],
    split: Annotated[Path | None, typer.Option(help="file of frame ids to evaluate (one per line)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result dict as JSON")] = False,
) -> None:
    """The official KITTI object evaluation (AP 2D/BEV/3D/AOS, R11 and R40), printed like the devkit."""
    from distill3d.data.kitti_io import evaluate_kitti_dirs

    result = evaluate_kitti_dirs(gt_label_dir, result_dir, split_file=split)
    _echo(json.dumps(result.to_dict(), indent=2) if as_json else result.table())


def _method_of_checkpoint(checkpoint: Path, capability: str) -> tuple[Any, dict[str, Any], Path]:
    """(method module, checkpoint state, checkpoint path), checking the method offers ``capability``."""
    from distill3d.cli.methods import load_method
    from distill3d.engine.checkpoint import load_checkpoint, resolve_checkpoint

    path = resolve_checkpoint(checkpoint)
    state = load_checkpoint(path)
    name = state.get("config", {}).get("method")
    if name is None:
        raise Distill3dError(f"{path}: checkpoint has no run config (not written by distill3d train)")
    method = load_method(name)
    if not hasattr(method, capability):
        raise Distill3dError(f"method '{name}' does not offer {capability}")
    return method, state, path


def _predict_options(pairs: list[str]) -> dict[str, str]:
    """``--option KEY=VALUE`` pairs → {key: value}; a pair without "=" or a repeated key is one error line."""
    options: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE")
        if key.strip() in options:
            raise ConfigError(f"--option {key.strip()} is given twice")
        options[key.strip()] = value
    return options


@app.command()
def predict(
    checkpoint: Annotated[Path, typer.Argument(help="run folder or checkpoint of a trained model")],
    images: Annotated[list[Path], typer.Argument(help="input files: images (point clouds for pointmcd)")],
    out_dir: Annotated[Path, typer.Option(help="where the annotated pictures go")] = Path("predictions"),
    option: Annotated[list[str] | None, typer.Option(
        help="KEY=VALUE passed to the method's predict (e.g. pointmcd segmentation: category=chair)")] = None,
) -> None:
    """Predict on input files: draw the prediction on each input and print it."""
    import inspect

    extra = _predict_options(option or [])
    check_output_dir(out_dir, "prediction folder")
    missing = [str(p) for p in images if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if missing[1:] else ""
        raise Distill3dError(f"{missing[0]}: input file not found{more}")
    method, state, _ = _method_of_checkpoint(checkpoint, "predict")
    if extra and "options" not in inspect.signature(method.predict).parameters:
        raise ConfigError(f"--option: method '{state['config']['method']}' takes no predict options")
    for line in method.predict(state, list(images), out_dir, **({"options": extra} if extra else {})):
        _echo(line)


@app.command()
def export(
    checkpoint: Annotated[Path, typer.Argument(help="run folder or checkpoint of a trained model")],
    export_format: Annotated[str, typer.Option("--format", help="torchscript or onnx")] = "torchscript",
    out: Annotated[Path | None, typer.Option(help="output file (default: next to the checkpoint)")] = None,
) -> None:
    """Export the deployable model (e.g. the image-only student) as TorchScript or ONNX."""
    if export_format not in ("torchscript", "onnx"):
        raise ConfigError(f"--format must be torchscript or onnx, got {export_format!r}")
    if out is not None:
        check_output_file(out, "export file")
    method, state, path = _method_of_checkpoint(checkpoint, "export")
    suffix = ".onnx" if export_format == "onnx" else ".torchscript.pt"
    target = out or path.with_name(path.stem + suffix)
    check_output_file(target, "export file")
    _echo(f"written: {method.export(state, target, export_format)}")


world_app = typer.Typer(help="The built-in procedural worlds: preview and export.", no_args_is_help=True)
app.add_typer(world_app, name="world")
WORLDS = ("shapes", "hands", "road")


def _check_world(name: str) -> None:
    if name not in WORLDS:
        raise ConfigError(f"unknown world '{name}' (known: {', '.join(WORLDS)})")


def _check_difficulty(name: str) -> None:
    from distill3d.data.worlds.difficulty import DIFFICULTIES

    if name not in DIFFICULTIES:
        raise ConfigError(f"unknown difficulty '{name}' (known: {', '.join(DIFFICULTIES)})")


@world_app.command("preview")
def world_preview(
    name: Annotated[str, typer.Argument(help=f"one of {', '.join(WORLDS)}")],
    out: Annotated[Path, typer.Option(help="PNG file to write")] = Path("contact_sheet.png"),
    n: Annotated[int, typer.Option(min=1, max=1024, help="number of samples")] = 16,
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1, help="world seed (non-negative)")] = 0,
    difficulty: Annotated[str, typer.Option(help="preset of the world: easy | standard | hard")]
    = "standard",
) -> None:
    """Write a PNG contact sheet of samples with their labels drawn (pose axes, hand skeleton, 3D boxes)."""
    from distill3d.data.worlds.preview import contact_sheet

    _check_world(name)
    _check_difficulty(difficulty)
    check_output_file(out, "contact sheet")
    _echo(f"written: {contact_sheet(name, n, seed, out, difficulty)}")


@world_app.command("export")
def world_export(
    name: Annotated[str, typer.Argument(help=f"one of {', '.join(WORLDS)}")],
    out: Annotated[Path, typer.Option(help="dataset folder to create (must not exist)")],
    n: Annotated[int, typer.Option(min=1, help="number of samples")] = 100,
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1, help="world seed (non-negative)")] = 0,
    difficulty: Annotated[str, typer.Option(help="preset of the world: easy | standard | hard")]
    = "standard",
) -> None:
    """Write a dataset folder in the real format: road → KITTI, hands → FreiHAND (training and evaluation
    splits), shapes → ShapeNetPart."""
    from distill3d.data.worlds.preview import export_world

    _check_world(name)
    _check_difficulty(difficulty)
    if out.exists():
        raise Distill3dError(f"{out} already exists; choose a new folder")
    check_output_dir(out, "dataset folder")
    _echo(f"written: {export_world(name, out, n, seed, difficulty=difficulty)}")


@app.command()
def demo(
    name: Annotated[str, typer.Argument(help=f"which demo: {', '.join(DEMOS)}")] = "pose_ckd",
    out_dir: Annotated[Path, typer.Option(help="where the demo's run folders go")] = Path("runs"),
    progress: Annotated[bool, typer.Option(help="show progress bars")] = True,
) -> None:
    """Run a quick preset on the built-in world (minutes on 2 CPU cores) and print its comparison table."""
    if name not in DEMOS:
        raise ConfigError(f"unknown demo '{name}' (known: {', '.join(DEMOS)})")
    check_output_dir(out_dir, "demo run folder")
    _echo(f"demo '{name}': {DEMOS[name]}")
    _echo(demos.run_demo(name, out_dir, progress))


def main(argv: list[str] | None = None) -> None:
    """Console entry point: runs the app, turning user errors into one-line messages.

    Usage errors (unknown command, bad option) are reported by click itself with exit status 2.
    """
    debug = bool(os.environ.get("DISTILL3D_DEBUG"))
    if not debug:
        warnings.showwarning = _show_warning
    try:
        app(args=argv, prog_name="distill3d")
    except NonFiniteLossError as err:
        if debug:
            raise
        typer.echo(f"error: {err}", err=True)
        sys.exit(1)
    except RunInterruptedError as err:
        typer.echo(f"{err}", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Distill3dError as err:
        if debug:
            raise
        typer.echo(f"error: {_one_line(str(err))}", err=True)
        sys.exit(2)
    except (OSError, MemoryError) as err:  # the machine, not the library: disk full, permissions, no memory
        if debug:
            raise
        if isinstance(err, MemoryError):
            typer.echo("error: out of memory", err=True)
        else:
            where = f"{err.filename}: " if getattr(err, "filename", None) else ""
            typer.echo(f"error: {where}{err.strerror or _one_line(str(err)) or type(err).__name__}", err=True)
        sys.exit(2)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Warnings on the command line: one line ``warning: …`` without the source location."""
    typer.echo(f"warning: {_one_line(str(message))}", err=True)


def _one_line(text: str) -> str:
    """Messages are one line: newlines (e.g. from a file name) are shown escaped."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


if __name__ == "__main__":
    main()
