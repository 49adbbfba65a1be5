import jax
import pytest

import qllg_jax  # noqa: F401  (enables float64)


@pytest.fixture
def key():
    return jax.random.PRNGKey(20241231)
