"""Every published value has its field's form; nothing else of a container file gets out."""

from __future__ import annotations

import pytest

from fingerprints.result import Component, Result
from fingerprints.values import MAX_ERROR, checked

ENVIRON = "PATH=/usr/bin\0HOME=/root\0TOKEN=s3cr3t"


@pytest.mark.parametrize(
    "field,value",
    [
        ("os", "rhel"),
        ("os", "opensuse-leap"),
        ("osVersion", "8.10"),
        ("osVersion", "3.21.0_alpha20240807"),
        ("kindVersion", "go1.21.11 (Red Hat 1.21.11-1.el9_4) X:strictfipsruntime"),
        ("kindVersion", "Python 3.11.2"),
        ("kindVersion", "1.8.0_411"),
        ("kindVersion", "v22.6.0"),
        ("kindImplementer", "Red Hat, Inc."),
        ("kindImplementer", "N/A"),
        ("kind", ".NET"),
    ],
)
def test_real_values_pass(field: str, value: str) -> None:
    result = checked(Result(**{field: value}))  # type: ignore[arg-type]
    assert getattr(result, field) == value and result.error is None


@pytest.mark.parametrize(
    "field,value",
    [
        ("osVersion", ENVIRON),
        ("osVersion", "3.20.2 extra words"),
        ("osVersion", "1" * 65),
        ("os", "Debian GNU/Linux"),
        ("kindVersion", "-----BEGIN PRIVATE KEY-----\nMIIE"),
        ("kindVersion", "x" * 129),
        ("kindImplementer", "a\nb"),
        ("kindImplementer", '"quoted"'),
    ],
)
def test_other_values_are_left_out_and_named(field: str, value: str) -> None:
    result = checked(Result(**{field: value}))  # type: ignore[arg-type]
    assert getattr(result, field) is None
    assert result.error == f"values left out, not of their field's form: {field}"
    assert value not in str(result.fields())


def test_runtimes_and_extras_are_checked() -> None:
    result = checked(
        Result(
            kind="Java",
            runtimes=(
                Component("Red Hat JBoss Enterprise Application Platform", "8.0 Update 6.1"),
                Component("Spring Boot", ENVIRON),
                Component(ENVIRON, "1.0"),
                Component("Quarkus", ""),
            ),
            extra={
                "javaHome": "/usr/lib/jvm/java-17",
                "goMainPath": "example.com/app\n" + ENVIRON,
                "nodeModuleVersion": 115,
                "vcsModified": True,
                "javaError": "libjvm: bad\x00\x1b[31m",
                "": "x",
                "empty": "",
                "list": ["a"],
            },
        )
    )
    assert result.runtimes == (
        Component("Red Hat JBoss Enterprise Application Platform", "8.0 Update 6.1"),
        Component("Spring Boot", None),
        Component("Quarkus", None),
    )
    assert dict(result.extra) == {
        "javaHome": "/usr/lib/jvm/java-17",
        "nodeModuleVersion": 115,
        "vcsModified": True,
        "javaError": "libjvm: bad\\x00\\x1b[31m",
    }
    assert result.error is not None
    assert "runtimes.version, runtimes.name, goMainPath, extra field name, list" in result.error
    assert "s3cr3t" not in str(result.fields())


def test_errors_are_bounded() -> None:
    result = checked(Result(error="x" * 10_000))
    assert result.error is not None and len(result.error) == MAX_ERROR


def test_empty_values_leave_no_trace() -> None:
    """Empty means not found: left out without an error (IRE's omitempty)."""
    result = checked(Result(os="", kindVersion="", runtimes=(Component("Express", ""),)))
    assert result.fields() == {"runtimes": [{"name": "Express"}]}
    assert result.error is None
    assert Result(os="", runtimes=(Component("", "1"),), extra={"a": ""}).fields() == {}
