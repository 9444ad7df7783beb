from pathlib import Path

import pytest

from kb.config import SETTINGS, load_settings
from kb.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_point_at_the_repository():
    settings = load_settings(environ={})
    assert settings["CONTENT_DIR"] == ROOT / "sops"
    assert settings["DATA_DIR"] == ROOT / "instance"
    assert settings["RRF_K"] == 10


def test_environment_overrides_defaults(tmp_path):
    settings = load_settings(environ={"KB_DATA_DIR": str(tmp_path), "KB_RRF_K": "30"})
    assert settings["DATA_DIR"] == tmp_path and settings["RRF_K"] == 30


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"KB_CONTNET_DIR": "x"}, "unknown setting KB_CONTNET_DIR"),
        ({"KB_RRF_K": "many"}, "RRF_K: expected a whole number"),
        ({"KB_PORT": "0"}, "PORT: must be at least 1"),
        ({"KB_PROXY_HOPS": "-1"}, "PROXY_HOPS: expected a whole number from 0 to 5, got '-1'"),
        ({"KB_PROXY_HOPS": "yes"}, "PROXY_HOPS: expected a whole number from 0 to 5"),
        ({"KB_PROXY_HOPS": "6"}, "PROXY_HOPS: expected a whole number from 0 to 5"),
        ({"KB_QUERY_ENCODER": "gpu"}, "QUERY_ENCODER: 'gpu' is not one of onnx, onnx-int8, torch"),
        ({"KB_KEYWORD_ENGINE": "lucene"}, "KEYWORD_ENGINE: 'lucene' is not one of tantivy, whoosh"),
        (
            {"KB_MCP_ALLOWED_HOSTS": "https://kb.example.com"},
            "MCP_ALLOWED_HOSTS: 'https://kb.example.com' is not a host",
        ),
    ],
)
def test_bad_settings_fail_naming_the_setting(environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(environ=environ)


def test_every_setting_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [s.name for s in SETTINGS if f"KB_{s.name}" not in readme]
    assert missing == []


def test_the_keyword_engine_default_is_the_indexing_default():
    from kb.indexing.keyword import DEFAULT_ENGINE, ENGINES

    setting = next(s for s in SETTINGS if s.name == "KEYWORD_ENGINE")
    assert setting.default == DEFAULT_ENGINE and set(setting.choices) == set(ENGINES)
