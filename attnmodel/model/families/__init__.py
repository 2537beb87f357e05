"""Attentiveness distributions ``P_eta``: the registry of families.

Each family is one module owning everything about its distribution (see
:mod:`attnmodel.model.families.base`): its numpy density, admissible range,
M-step, EM start and its piece of the PyMC model. This package maps names to
classes.

Adding a family means writing one module (a subclass of
:class:`~attnmodel.model.families.base.DiscreteFamily` or
:class:`~attnmodel.model.families.base.ContinuousFamily`, or of
:class:`~attnmodel.model.families.base.MixtureFamily`) and importing it into
:data:`FAMILIES` below; the contract test (``tests/test_family_contract.py``)
checks every registered family.
"""

from __future__ import annotations

import numpy as np

from attnmodel.model.families.base import (
    ContinuousFamily,
    DiscreteFamily,
    Family,
    MixtureFamily,
    Params,
)
from attnmodel.model.families.beta import Beta
from attnmodel.model.families.beta_mixture import BetaMixture
from attnmodel.model.families.k_point import KPoint
from attnmodel.model.families.logistic_normal_mixture import LogisticNormalMixture
from attnmodel.model.families.two_point import TwoPoint

__all__ = [
    "Beta",
    "BetaMixture",
    "ContinuousFamily",
    "DiscreteFamily",
    "FAMILIES",
    "FAMILY_NAMES",
    "Family",
    "KPoint",
    "LogisticNormalMixture",
    "MixtureFamily",
    "TwoPoint",
    "family_for_params",
    "get_family",
]


def family_for_params(family: str | Family, params: Params) -> Family:
    """The family instance whose component count matches ``params``.

    A name such as ``"k_point"`` says nothing about K; the parameters do.
    """
    if isinstance(family, Family):
        return family
    fam = get_family(family)
    for key, dims in fam.param_dims.items():
        if dims and key in params:
            return get_family(family, int(np.size(params[key])))
    return fam


#: The registry: family name -> class. A new family is one module and one line here.
FAMILIES: dict[str, type[Family]] = {
    TwoPoint.name: TwoPoint,
    KPoint.name: KPoint,
    Beta.name: Beta,
    BetaMixture.name: BetaMixture,
    LogisticNormalMixture.name: LogisticNormalMixture,
}
#: Names of the registered families, in registry order.
FAMILY_NAMES = tuple(FAMILIES)


def get_family(family: str | Family, n_components: int | None = None) -> Family:
    """Return a family instance from a name (``"beta"``, ``"two_point"``, ...) or an instance.

    Parameters
    ----------
    family : str or Family
    n_components : int, optional
        For ``k_point`` (default 3), ``beta_mixture`` and
        ``logistic_normal_mixture`` (default 2).
    """
    if isinstance(family, Family):
        if n_components is not None and n_components != family.n_components:
            raise ValueError("n_components conflicts with the given family instance")
        return family
    try:
        cls = FAMILIES[str(family)]
    except KeyError:
        raise ValueError(
            f"unknown family {family!r}; choose one of {', '.join(FAMILY_NAMES)}"
        ) from None
    return cls() if n_components is None else cls(n_components)
