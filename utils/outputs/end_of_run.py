"""Where a training run stands, and what its folder holds at its end beyond the
logs: pictures drawn from them, the model's exports and (dSprites) the metrics.
Written when training ends, and by a rerun whose end a stop or a kill cut short,
which writes only what is missing.
"""

import json

from tqdm import tqdm

from utils.data import info as dataset_info
from utils.data.pipeline import test_sets
from utils.outputs.export import MODELS, RECORD, export_model, exported_step
from utils.outputs.images import save_gif
from utils.outputs.logs import METRICS_CSV, read_log_csv
from utils.outputs.metrics_file import evaluate_metrics
from utils.outputs.plots import save_kl_bars, save_loss_curves
from utils.outputs.step_images import step_image_paths, step_images, z_mean_and_kl
from utils.runs.checkpoints import latest_checkpoint_step, read_state_value
from utils.runs.folder import load_parameters, read_status, write_status

# Said before the metrics at a run's end start: how long, and how not to wait.
METRICS_NOTICE = {
    "reference": (
        "Metrics: disentanglement_lib's reference protocol, about 10 minutes on one "
        'CPU core (README, "Disentanglement metrics"). Ctrl-C stops them and the '
        "rerun computes them; --metrics_protocol=fast takes about 30 s, "
        "--metrics_at_end=False skips them (--mode=evaluate computes them later)."
    ),
    "fast": "Metrics: the fast protocol, about 30 s on one CPU core.",
}


def saved_parameters(folder):
    """The run's parameters: params.json, or if it is lost, the copy in the
    latest checkpoint; None for a new run."""
    return load_parameters(folder) or read_state_value(
        folder / "checkpoints", "parameters"
    )


def finished_step(p, folder):
    """The step at which the run finished training (num_steps reached, or early
    stopping), from its last checkpoint; None while it has more to train."""
    done = latest_checkpoint_step(folder / "checkpoints")
    if done >= p["num_steps"]:
        return done
    patience = p["early_stopping_patience"]
    if done and patience:
        stale = read_state_value(
            folder / "checkpoints", "validations_without_improvement"
        )
        if stale is not None and stale >= patience:
            return done
    return None


STEP_IMAGES = "the last step's images"


def final_outputs(p, folder, step, results=True):
    """{name: whether it is written} for what a run's folder holds at its end:
    pictures drawn from its logs, and (`results`, once it is finished) the model's
    exports and metrics."""
    outputs = {
        # The last step's, drawn in a thread after its checkpoint: a kill between
        # the two leaves them to this. Before training.gif, which shows them.
        STEP_IMAGES: all(path.exists() for path in step_image_paths(folder, step)),
        "loss_curves.png": (folder / "loss_curves.png").is_file(),
        "kl_per_latent.png": (folder / "kl_per_latent.png").is_file(),
    }
    if any((folder / "composites").glob("step_*.jpg")):
        outputs["training.gif"] = (folder / "training.gif").is_file()
    if not results:
        return outputs
    exported = all((folder / "model" / name).exists() for name in MODELS)
    # Exported at this step: those of an earlier end stay until replaced. Exports
    # from before the record was written count as they are.
    record = folder / "model" / RECORD
    outputs["model/"] = exported and (
        exported_step(folder / "model") == step or not record.exists()
    )
    if dataset_info(p["dataset"]).has_factors and p["metrics_at_end"]:
        try:
            metrics = json.loads((folder / "metrics.json").read_text())
        except (OSError, ValueError):
            metrics = {}
        protocol = metrics.get("protocols", {}).get(p["metrics_protocol"], {})
        outputs["metrics.json"] = protocol.get("step") == step
    return outputs


def missing_final_outputs(p, folder, step):
    return [name for name, done in final_outputs(p, folder, step).items() if not done]


def write_final_outputs(p, folder, model, source, step, everything, results):
    """training.gif, loss_curves.png, kl_per_latent.png and, with `results`, the
    exports and (dSprites) the metrics: what a user opens first. `everything`:
    after training; else only what is missing (a rerun of a finished run whose
    end a stop or a kill cut short)."""

    def kl_bars():
        _, kl_images = test_sets(source)
        _, kl = z_mean_and_kl(model, kl_images)
        save_kl_bars(folder / "kl_per_latent.png", kl.mean(axis=0), len(kl_images))

    def last_step_images():
        test_images, kl_images = test_sets(source)
        step_images(model, test_images, kl_images, folder, step)()

    writers = {
        STEP_IMAGES: last_step_images,
        "training.gif": lambda: save_gif(
            folder / "training.gif", sorted((folder / "composites").glob("step_*.jpg"))
        ),
        "loss_curves.png": lambda: save_loss_curves(
            folder / "loss_curves.png",
            read_log_csv(folder / "log.csv"),
            read_log_csv(folder / "validation.csv"),
            p,
            read_log_csv(folder / METRICS_CSV),
        ),
        "kl_per_latent.png": kl_bars,
        "model/": lambda: export_model(model, folder / "model", step),
        "metrics.json": lambda: evaluate_metrics(
            model.encoder, source, folder, p["metrics_protocol"], step
        ),
    }
    outputs = final_outputs(p, folder, step, results)
    # `everything` redraws what the loop may have drawn from older logs, not the
    # images the loop drew of this very step.
    missing = [
        k for k, done in outputs.items()
        if not done or (everything and k != STEP_IMAGES)
    ]  # fmt: skip
    bar = tqdm(missing, desc="results", unit="file", dynamic_ncols=True)
    status = read_status(folder)  # end_of_session's, to restore once they are done
    for name in bar:  # the metrics show their own bars: minutes with reference
        bar.set_postfix_str(name)
        if name == "metrics.json":
            bar.write(METRICS_NOTICE[p["metrics_protocol"]])
            if status:  # the compare page and a reader see it is not done yet
                reason = f"{status.get('reason', '')}; computing the metrics"
                write_status(folder, "evaluating", step, status["num_steps"], reason)
        writers[name]()
    if status and "metrics.json" in missing:
        write_status(folder, status["state"], step, status["num_steps"],
                     status.get("reason", ""))  # fmt: skip
