"""Former location of ``ppzoo.utils.weights``, kept so existing imports work."""
from ppzoo.utils.weights import WeightsError, load_weights, read_state_dict  # noqa: F401
