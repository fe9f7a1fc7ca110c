from __future__ import annotations

import textwrap
from pathlib import Path

import pydantic
import pytest
import yaml

from collector.yamlfile import LocatedYaml, YamlError, load_yaml, validation_error


def write(tmp_path: Path, text: str, name: str = "doc.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


DOC = """
hosts:
  r1:
    hostname: 10.0.0.1
    port: 22
  r2:
    groups:
      - hub
      - dmvpn
    data: {role: spoke}
"""


def test_data_equals_safe_load(tmp_path):
    path = write(tmp_path, DOC)
    doc = load_yaml(path)
    assert doc.data == yaml.safe_load(path.read_text())
    assert doc.path == path


def test_line_of_keys_and_items(tmp_path):
    doc = load_yaml(write(tmp_path, DOC))
    assert doc.line_of(("hosts",)) == 1
    assert doc.line_of(("hosts", "r1")) == 2
    assert doc.line_of(("hosts", "r1", "port")) == 4
    assert doc.line_of(("hosts", "r2", "groups", 1)) == 8
    assert doc.line_of(("hosts", "r2", "data", "role")) == 9


def test_line_of_missing_key_gives_nearest_ancestor(tmp_path):
    doc = load_yaml(write(tmp_path, DOC))
    assert doc.line_of(("hosts", "r1", "username")) == 2
    assert doc.line_of(("hosts", "r2", "groups", 7)) == 6
    assert doc.line_of(("nothing",)) == 1


def test_line_of_skips_pydantic_validator_steps(tmp_path):
    doc = load_yaml(write(tmp_path, DOC))
    assert doc.line_of(("hosts", "r1", "function-after[check(), Host]", "port")) == 4


def test_merge_keys_are_resolved_and_located(tmp_path):
    doc = load_yaml(write(tmp_path, """
        base: &base
          port: 2222
          username: admin
        hosts:
          r1:
            <<: *base
            port: 22
    """))
    assert doc.data["hosts"]["r1"] == {"port": 22, "username": "admin"}
    assert doc.line_of(("hosts", "r1", "port")) == 7


def test_duplicate_key_is_reported_with_both_lines(tmp_path):
    path = write(tmp_path, """
        hosts:
          r1:
            port: 22
            port: 23
    """)
    with pytest.raises(YamlError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}:4: duplicate key 'port' (first defined at line 3)"
    assert info.value.line == 4


def test_duplicate_top_level_section(tmp_path):
    path = write(tmp_path, "hosts: {}\ngroups: {}\nhosts: {}\n")
    with pytest.raises(YamlError, match=r":3: duplicate key 'hosts'"):
        load_yaml(path)


def test_syntax_error_names_line(tmp_path):
    path = write(tmp_path, """
        hosts:
          r1:
            hostname: 10.0.0.1
           port: 22
    """)
    with pytest.raises(YamlError) as info:
        load_yaml(path)
    text = str(info.value)
    assert text.startswith(f"{path}:4: YAML syntax error")
    assert "\n" not in text


def test_unclosed_flow_sequence(tmp_path):
    path = write(tmp_path, "hosts:\n  r1:\n    groups: [a, b\n")
    with pytest.raises(YamlError, match=r"doc\.yaml:\d+: YAML syntax error"):
        load_yaml(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(YamlError) as info:
        load_yaml(path)
    assert str(info.value) == f"{path}: file not found"
    assert info.value.line is None


def test_directory_is_not_a_file(tmp_path):
    with pytest.raises(YamlError, match="is a directory"):
        load_yaml(tmp_path)


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"a: 1\nb: \xff\xfe\n")
    with pytest.raises(YamlError, match=r"bin\.yaml:2: not UTF-8"):
        load_yaml(path)


def test_empty_document(tmp_path):
    doc = load_yaml(write(tmp_path, "# only a comment\n"))
    assert doc.data is None
    assert doc.line_of(("hosts",)) is None


def test_two_documents_are_rejected(tmp_path):
    path = write(tmp_path, "a: 1\n---\nb: 2\n")
    with pytest.raises(YamlError, match=r":2: YAML syntax error: but found another document"):
        load_yaml(path)


def test_recursive_anchor_is_refused_not_hung(tmp_path):
    with pytest.raises(YamlError, match=r":1: an alias refers to the value that contains it"):
        load_yaml(write(tmp_path, "a: &x [1, *x]\n"))


def test_unknown_tag_is_an_error_not_code(tmp_path):
    path = write(tmp_path, "a: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(YamlError, match=r":1: YAML syntax error"):
        load_yaml(path)


class Port(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    hostname: str
    port: int = 22


class Hosts(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid")
    hosts: dict[str, Port]


def test_validation_error_names_line_and_path(tmp_path):
    path = write(tmp_path, DOC.replace("port: 22", "port: twenty-two"))
    doc = load_yaml(path)
    with pytest.raises(pydantic.ValidationError) as info:
        Hosts.model_validate(doc.data)
    err = validation_error(doc, info.value)
    assert isinstance(err, YamlError)
    assert str(err).startswith(f"{path}:4: hosts.r1.port: Input should be a valid integer")


def test_validation_error_unknown_key(tmp_path):
    path = write(tmp_path, """
        hosts:
          r1:
            hostname: a
            prot: 22
    """)
    doc = load_yaml(path)
    with pytest.raises(pydantic.ValidationError) as info:
        Hosts.model_validate(doc.data)
    assert str(validation_error(doc, info.value)) == f"{path}:4: hosts.r1.prot: unknown key"


def test_validation_error_missing_key_points_at_parent(tmp_path):
    path = write(tmp_path, "hosts:\n  r1:\n    port: 22\n")
    doc = load_yaml(path)
    with pytest.raises(pydantic.ValidationError) as info:
        Hosts.model_validate(doc.data)
    assert str(validation_error(doc, info.value)) == f"{path}:2: hosts.r1.hostname: required key is missing"


def test_validation_error_with_prefix(tmp_path):
    path = write(tmp_path, "hosts:\n  r1:\n    hostname: a\n    port: x\n")
    doc = load_yaml(path)
    with pytest.raises(pydantic.ValidationError) as info:
        pydantic.TypeAdapter(dict[str, Port]).validate_python(doc.data["hosts"])
    err = validation_error(doc, info.value, prefix=("hosts",))
    assert err.line == 4
    assert "hosts.r1.port:" in str(err)


def test_located_yaml_is_frozen(tmp_path):
    doc = load_yaml(write(tmp_path, "a: 1\n"))
    assert isinstance(doc, LocatedYaml)
    with pytest.raises(AttributeError):
        doc.data = {}  # type: ignore[misc]


def test_control_character_is_one_line_with_its_line(tmp_path):
    path = tmp_path / "ctl.yaml"
    path.write_text("hosts:\n  r1\x07: {}\n")
    with pytest.raises(YamlError) as err:
        load_yaml(path)
    assert str(err.value).startswith(f"{path}:2: control character")


def test_alias_bomb_is_refused(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i-1}"] * 10) + "]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(YamlError, match="aliases expand to more than 200000 extra values"):
        load_yaml(path)


def test_ordinary_aliases_still_load(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text("base: &base {port: 22}\nhosts:\n  r1: *base\n  r2: *base\n")
    assert load_yaml(path).data["hosts"]["r2"] == {"port": 22}
