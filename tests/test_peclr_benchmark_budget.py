"""benchmarks/peclr.py: other pre-training / fine-tuning budgets (a GPU run) get their own preset and report name,
so the committed 2-core report is never overwritten by them."""

from __future__ import annotations


def test_default_budget_keeps_the_report_name() -> None:
    from benchmarks.peclr import FULL, QUICK, budget_preset

    assert budget_preset(False) == (FULL, "peclr")
    assert budget_preset(True) == (QUICK, "peclr_quick")
    assert budget_preset(False, FULL.pretrain_epochs, FULL.finetune_steps) == (FULL, "peclr")


def test_another_budget_gets_its_own_name() -> None:
    from benchmarks.peclr import FULL, budget_preset

    preset, name = budget_preset(False, finetune_steps=5000)
    assert (preset.finetune_steps, preset.pretrain_epochs) == (5000, FULL.pretrain_epochs)
    assert name == f"peclr_pretrain{FULL.pretrain_epochs}_steps5000"
    preset, name = budget_preset(False, pretrain_epochs=40, finetune_steps=5000)
    assert (preset.pretrain_epochs, preset.labelled) == (40, FULL.labelled) and name == "peclr_pretrain40_steps5000"
    preset, name = budget_preset(False, finetune_steps=5000, labelled=100_000)
    assert preset.labelled == 100_000 and name == f"peclr_pretrain{FULL.pretrain_epochs}_steps5000_labelled100000"


def test_cold_start_and_per_seed_pre_training_get_their_own_names() -> None:
    """``--cold-start`` drops the warm start from every run's overrides and is named in the report's file name."""
    from benchmarks.peclr import FULL, budget_preset, common_overrides

    assert "options.pretrained_backbone=builtin" in common_overrides(FULL, seed=0, threads=1)
    preset, name = budget_preset(False, cold_start=True)
    assert name == "peclr_cold" and not preset.warm_start
    assert not any("pretrained_backbone" in override for override in common_overrides(preset, seed=0, threads=1))
    preset, name = budget_preset(False, finetune_steps=5000, cold_start=True, pretrain_per_seed=True)
    assert name == f"peclr_pretrain{FULL.pretrain_epochs}_steps5000_cold_pretrain_per_seed"
    assert preset.finetune_steps == 5000 and not preset.warm_start


def test_the_world_preset_reaches_every_run() -> None:
    import dataclasses

    from benchmarks.peclr import FULL, common_overrides

    assert "options.difficulty=standard" in common_overrides(FULL, seed=0, threads=1)
    assert "options.difficulty=hard" in common_overrides(dataclasses.replace(FULL, difficulty="hard"), 0, 1)


def test_the_full_label_arm_can_get_its_own_budget() -> None:
    """``full_label_steps`` applies to the 100 % arm only; the default preset gives every arm the same steps."""
    import dataclasses

    from benchmarks.peclr import FULL

    assert FULL.steps_for(1.0) == FULL.steps_for(FULL.low_fraction) == FULL.finetune_steps
    longer = dataclasses.replace(FULL, full_label_steps=7000)
    assert (longer.steps_for(1.0), longer.steps_for(FULL.low_fraction)) == (7000, FULL.finetune_steps)
