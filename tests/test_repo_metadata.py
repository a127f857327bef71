"""The files a public research repository carries: licence, citation, package metadata, hooks."""

import subprocess
import sys
from importlib.metadata import metadata
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def test_license_is_apache_2_like_the_official_dinov2():
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole licence, not a stub


def test_citation_cff_has_the_fields_cff_1_2_requires_and_cites_the_paper():
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):  # required by the CFF 1.2.0 schema
        assert cff[key], key
    assert all("name" in a or "family-names" in a for a in cff["authors"])
    paper = cff["preferred-citation"]
    assert paper["title"].startswith("Ditch the Denoiser")
    assert "arXiv:2505.12191" in [i["value"] for i in paper["identifiers"]]
    assert all(a["family-names"] and a["given-names"] for a in paper["authors"])
    cited = " ".join(r["title"] for r in cff["references"])
    assert "DINOv2" in cited and "Neighbor2Neighbor" in cited
    assert cff["license"] == "Apache-2.0"


def test_installed_package_metadata_carries_license_urls_and_classifiers():
    meta = metadata("noisy-dinov2")  # what pip built from pyproject.toml
    assert meta["License-Expression"] == "Apache-2.0"
    assert meta["Author"] or meta["Author-email"]
    assert any(
        c.startswith("License") or "Science/Research" in c for c in meta.get_all("Classifier")
    )
    urls = meta.get_all("Project-URL")
    assert any(u.endswith("https://arxiv.org/abs/2505.12191") for u in urls), urls


def test_pre_commit_runs_ruff_check_and_format():
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    hooks = {h["id"] for repo in config["repos"] for h in repo["hooks"]}
    assert {"ruff-check", "ruff-format"} <= hooks


def test_ruff_check_and_format_are_clean_at_line_length_100():
    """The tree is as `ruff format` writes it (100 columns), lint-clean, no format-skip markers."""
    ruff = Path(sys.executable).with_name("ruff")
    for args in (["check", "."], ["format", "--check", "."]):
        run = subprocess.run([str(ruff), *args], cwd=REPO, capture_output=True, text=True)
        report = run.stdout[-3000:] + run.stderr[-1000:]
        assert run.returncode == 0, f"ruff {' '.join(args)}:\n{report}"
    pyproject = (REPO / "pyproject.toml").read_text()
    assert "line-length = 100" in pyproject and '"E501"' not in pyproject
    marker = "fmt: " + "skip"  # split so that this file does not match itself
    tracked = subprocess.run(
        ["git", "ls-files", "*.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    offenders = [f for f in tracked if marker in (REPO / f).read_text()]
    assert not offenders, offenders
