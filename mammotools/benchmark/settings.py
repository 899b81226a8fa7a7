"""The protocol's settings in words, for the report: what every model shared, the equal budget
and each stage's share, what each model did with its training, the options as the command
line gave them."""

from __future__ import annotations

from typing import Any


def settings_line(record: dict[str, Any]) -> str:
    """The settings every model shared, in words (from run.json)."""
    first = next(iter(record["configs"].values()))
    overrides = record.get("overrides", {})
    parts = [
        f"recipe {record['recipe']}",
        f"{first['optimizer']} lr {first['lr']:g}",
        budget_words(first, record)
        if first.get("budget_minutes")
        else f"{epochs_words(first)} ("
        + (f"patience {first['patience']})" if first["patience"] else "no early stopping)"),
        f"batch {first['batch_size']}",
        f"width {first['width']:g}",
        f"scale {first['scale']:g}",
        f"class weights {first['class_weights']}",
    ]
    pretrained = [r["model"] for r in record["runs"] if r.get("pretrained")]
    parts.append(f"ImageNet weights for {', '.join(pretrained)}" if pretrained else "no pretrained weights (from scratch)")
    given = ", ".join(option_words(k, v, overrides) for k, v in overrides.items() if k not in ("workers", "input_width"))
    return "; ".join(parts) + (f" (set on the command line: {given})" if given else "")


OPTION_NAMES = {"budget_minutes": "--budget"}  # settings whose option has another name


def option_words(key: str, value: Any, overrides: dict[str, Any]) -> str:
    """``--budget 10``, ``--input-size 1024x1400``: a setting as the command line gave it."""
    if key == "input_size" and overrides.get("input_width"):
        return f"--input-size {value}x{overrides['input_width']}"
    return f"{OPTION_NAMES.get(key, '--' + key.replace('_', '-'))} {value}"


def budget_words(config: dict[str, Any], record: dict[str, Any]) -> str:
    """The equal budget in words: minutes per run, each stage's share, what still caps it."""
    from mammotools.models import MODELS

    minutes = float(config["budget_minutes"])
    staged = [r["model"] for r in record["runs"] if len(MODELS[r["model"]].stages) > 1]
    shares = "; ".join(
        f"{chain}'s {len(MODELS[chain].stages)} stages {minutes / len(MODELS[chain].stages):.3g} min each" for chain in staged
    )
    cap = f", at most {config['epochs']} epoch(s) per stage" if config["epochs"] < 10_000 else ""
    return (
        f"an equal budget of {minutes:g} min of wall clock per run, training and per-epoch validation included"
        + (f" (a staged run's stages share it equally: {shares}; a later stage's figures count the stages before it)"
           if shares else "")
        + cap
        + (f", early stopping after {config['patience']} epoch(s) without a better validation mIoU"
           if config["patience"] else ", no early stopping")
    )  # fmt: skip


def epochs_cell(row: dict[str, Any]) -> str:
    """``5`` or, when the run recorded them, ``5 (2,100 windows, budget)``: what a model did with its training."""
    seen, stopped = row.get("images_seen") or 0, row.get("stopped_by") or ""
    details = ", ".join(part for part in (f"{seen:,} windows" if seen else "", stopped) if part)
    return f"{row['epochs']}" + (f" ({details})" if details else "")


def epochs_words(config: dict[str, Any]) -> str:
    """``2 epoch(s) per stage`` or, with epoch_crops, ``2 epoch(s) of 400 crops per stage``."""
    crops = config.get("epoch_crops") or 0
    return f"{config['epochs']} epoch(s)" + (f" of {crops:,} crops" if crops else "") + " per stage"
