import pytest

from tests.daemon import ECHO, make_function


@pytest.fixture
def echo_fn(tmp_path):
    return make_function(tmp_path / "echo", ECHO)


@pytest.fixture
def behave_fn(tmp_path):
    from tests.daemon import BEHAVE

    return make_function(tmp_path / "behave", BEHAVE)
