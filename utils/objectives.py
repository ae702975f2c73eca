"""The objectives a run can train, each described once: its paper and formula, the
params.py names it reads, the terms it logs, and how it reads in words and in a run
name. The maths is in models.py (`LOSSES`, one function per objective); nothing
here imports TensorFlow, so that --help, parameter checks and the compare page
answer in a fraction of a second.
"""

from collections.abc import Callable
from dataclasses import dataclass

RECONSTRUCTION_LOSSES = ("squared_error", "bernoulli", "absolute_error")
BETA_SCHEDULES = ("constant", "warmup", "decrease")
# Every objective logs these, so that runs of different objectives compare: the
# negative ELBO (reconstruction + KL) does not depend on the step or the
# objective's weights, and is what validation selects on.
COMMON_TERMS = ("loss", "reconstruction_loss", "kl", "negative_elbo")


@dataclass(frozen=True)
class Objective:
    name: str  # the value of `objective` in params.py
    paper: str
    loss: str  # the per-example loss as README's table writes it
    parameters: tuple[str, ...]  # the params.py names it reads, besides the VAE's
    terms: dict[str, str]  # its own logged columns → their title in plots
    words: Callable[[dict], str]  # its settings in words, for the compare page
    tag: Callable[[dict], str]  # what tells it apart in a default run name
    discriminator: bool = False  # trains a second network (FactorVAE)
    kl_target: str | None = None  # a term drawn on the KL panel (capacity's C)


def _g(value) -> str:
    return format(value, "g") if isinstance(value, int | float) else str(value)


def dip_lambda_d(p: dict) -> float:
    """DIP-VAE's diagonal weight λ_d: `lambda_d`, or disentanglement_lib's choice
    when it is None, 10·λ_od for DIP-VAE-I and λ_od for DIP-VAE-II."""
    if p.get("lambda_d") is not None:
        return p["lambda_d"]
    return (10.0 if p.get("objective") == "dip1" else 1.0) * p["lambda_od"]


def _beta_words(p: dict) -> str:
    schedule, beta, steps = p.get("beta_schedule"), _g(p.get("beta")), p["beta_steps"]
    if schedule == "warmup":
        return f"β-VAE, β warm-up 0→{beta} over {steps} steps"
    if schedule == "decrease":
        return f"β-VAE, β {_g(p.get('beta_start'))}→{beta} over {steps} steps"
    return f"β-VAE, β = {beta}"


def _beta_tag(p: dict) -> str:
    beta = _g(p["beta"])
    if p["beta_schedule"] == "warmup":
        return f"beta{beta}_warmup{p['beta_steps']}"
    if p["beta_schedule"] == "decrease":
        return f"beta{_g(p['beta_start'])}to{beta}_over{p['beta_steps']}"
    return f"beta{beta}"


def _dip(name: str, roman: str, covariance: str) -> Objective:
    return Objective(
        name=name,
        paper=f"DIP-VAE-{roman} (Kumar et al. 2018)",
        loss=f"recon + KL + λ_od·Σ_i≠j C_ij² + λ_d·Σ_i (C_ii − 1)², C = {covariance}",
        parameters=("lambda_od", "lambda_d"),
        terms={
            "dip_off_diagonal": "Σ_i≠j C_ij² (C: latent covariance)",
            "dip_diagonal": "Σ_i (C_ii − 1)²",
        },
        words=lambda p: (
            f"DIP-VAE-{roman}, λ_od = {_g(p.get('lambda_od'))}, "
            f"λ_d = {_g(dip_lambda_d(p))}"
        ),
        tag=lambda p: f"{name}_od{_g(p['lambda_od'])}_d{_g(dip_lambda_d(p))}",
    )


OBJECTIVES = {
    o.name: o
    for o in (
        Objective(
            name="beta",
            paper="β-VAE (Higgins et al. 2017)",
            loss="recon + β(step)·KL",
            parameters=("beta", "beta_schedule", "beta_start", "beta_steps"),
            terms={"beta": "β"},
            words=_beta_words,
            tag=_beta_tag,
        ),
        Objective(
            name="capacity",
            paper="capacity (Burgess et al. 2018)",
            loss="recon + γ·|KL − C(step)|",
            parameters=("gamma", "capacity_max", "capacity_steps"),
            terms={"capacity": "capacity C (nats)"},
            words=lambda p: (
                f"capacity C→{_g(p.get('capacity_max'))} nats over "
                f"{p.get('capacity_steps')} steps, γ = {_g(p.get('gamma'))}"
            ),
            tag=lambda p: f"capacity{_g(p['capacity_max'])}_gamma{_g(p['gamma'])}",
            kl_target="capacity",
        ),
        Objective(
            name="tc",
            paper="β-TCVAE (Chen et al. 2018)",
            loss="recon + KL + (β − 1)·TC, TC estimated on the minibatch",
            parameters=("beta",),
            terms={"tc": "total correlation (nats, minibatch estimate)"},
            words=lambda p: f"β-TCVAE, β = {_g(p.get('beta'))}",
            tag=lambda p: f"tc_beta{_g(p['beta'])}",
        ),
        Objective(
            name="factor",
            paper="FactorVAE (Kim & Mnih 2018)",
            loss="recon + KL + γ·TC, TC from a discriminator on z vs permuted z",
            parameters=("factor_gamma",),
            terms={
                "tc": "total correlation (discriminator's estimate)",
                "discriminator_loss": "discriminator loss",
            },
            words=lambda p: f"FactorVAE, γ = {_g(p.get('factor_gamma'))}",
            tag=lambda p: f"factor_gamma{_g(p['factor_gamma'])}",
            discriminator=True,
        ),
        _dip("dip1", "I", "Cov[μ(x)]"),
        _dip("dip2", "II", "Cov[μ(x)] + E[diag σ²(x)]"),
    )
}


def objective_of(p: dict) -> Objective:
    return OBJECTIVES[p.get("objective", "beta")]


def logged_terms(p: dict) -> list[str]:
    """The columns a run logs per step and per validation, after "step" (and before
    the KL of each latent in log.csv)."""
    return [*COMMON_TERMS, *objective_of(p).terms]


def describe(p: dict) -> str:
    """The objective with its settings, in words: "β-VAE, β = 4"."""
    objective = OBJECTIVES.get(p.get("objective", "beta"))
    if objective is None:
        return f"unknown objective {p.get('objective')!r}"
    try:
        return objective.words(p)
    except (KeyError, TypeError):  # a params.json missing some of its values
        return objective.paper
