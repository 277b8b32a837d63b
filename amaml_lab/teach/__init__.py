"""The notebooks' computations, one module per subject: :mod:`.surfaces` (01, 02's closed-form quadratic),
:mod:`.horizons` and :mod:`.horizons_data` (02's explorer), :mod:`.backward` (03), :mod:`.baselines` (04),
:mod:`.payoff` (08's small study run here) and :mod:`.exercises` (every notebook's checked exercises)."""

from ..faces import lazy_face

SUBMODULES = ("surfaces", "horizons", "horizons_data", "backward", "baselines", "payoff", "exercises")
__all__ = list(SUBMODULES)
__getattr__ = lazy_face(__name__, {}, SUBMODULES)
