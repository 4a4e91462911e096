"""Start-up hygiene (issue 15): a run imports only what it needs.

Each check runs in a fresh interpreter (a subprocess) and reads ``sys.modules`` after
the work, so what other tests imported cannot hide a regression:

- analysing a PET image-quality series imports no CT or MR analysis module, and no
  ``scipy.signal`` / ``scipy.stats`` (about 1.1 s of imports on the 2-core benchmark
  machine, bench/README.md), nor the report, store, network or simulation packages;
  analysing real CatPhan slices imports no PET or MR analysis, nor those;
- analysing a real ACR MRI series imports no PET or CT analysis and no ``scipy.optimize``;
- ``import scanbench`` and ``scanbench --help`` import none of those, nor numpy or
  pydicom.

Times are never asserted here; ``bench/startup.py`` measures them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scanbench.analysis import registry

# Packages no plain `scanbench analyze FOLDER` (no --report) of a DICOM series needs.
HEAVY = ("scipy.signal", "scipy.stats", "plotly", "jinja2", "sqlalchemy", "pynetdicom",
         "h5py", "dask")


def _run(code: str) -> tuple[str, set[str]]:
    """What a fresh interpreter prints running ``code``, and the modules it then holds."""
    probe = (f"{code}\nimport json, sys\n"
             "sys.stdout.write('\\nMODULES ' + json.dumps(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    printed, modules = done.stdout.rsplit("\nMODULES ", 1)
    return printed, set(json.loads(modules))


def _cli(*args: str) -> str:
    """Python code running ``scanbench ARGS`` in-process (exit status 0 required)."""
    return ("import sys\nfrom scanbench.cli import main\n"
            f"sys.argv = ['scanbench', *{list(args)!r}]\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n")


def _heavy(modules: set[str], extra: tuple[str, ...] = ()) -> list[str]:
    roots = HEAVY + extra
    return sorted(m for m in modules if any(m == r or m.startswith(r + ".") for r in roots))


@pytest.fixture(scope="module")
def pet_iq(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from scanbench.simulate import simulate_iq

    out = tmp_path_factory.mktemp("iq")
    simulate_iq(out, voxel_mm=4.0, activity_ratio=8.0, seed=1)
    return out


def _entry(*args: str) -> str:
    """Python code running ``scanbench ARGS`` as the console script does (scanbench.entry,
    stderr a pipe), exit status 0 required."""
    return _cli(*args).replace("from scanbench.cli import main", "from scanbench.entry import main")


def test_pet_analysis_imports_no_ct_mr_analysis_nor_scipy_signal_stats(pet_iq: Path) -> None:
    """Also no Typer, click or pydantic: ``analyze ... --json`` from a script runs without
    them (scanbench.entry; about 0.1 s of the PET whole process, bench/README.md). rich is
    imported here only to print the note on the simulation's skipped ground_truth.json
    (tests/unit/test_cli_fast_path.py checks a real folder without one imports no rich)."""
    printed, modules = _run(_entry("analyze", str(pet_iq), "--json"))
    (result,) = json.loads(printed)  # the run did analyse the series
    assert result["analysis"] == "pet.nema_nu2_2018.image_quality"
    assert "scanbench.analysis.pet.image_quality" in modules
    other = sorted(m for m in modules if m.startswith(("scanbench.analysis.ct",
                                                       "scanbench.analysis.mr")))
    assert other == []
    assert _heavy(modules, ("scanbench.report", "scanbench.store", "scanbench.net",
                            "scanbench.simulate", "typer", "click", "pydantic")) == []


PET_IQ = Path(__file__).resolve().parents[3] / "shared/data/pet/nema-iq-test-recon/pet_recon_2"


@pytest.mark.skipif(not PET_IQ.is_dir(), reason="needs ../shared/data (real NEMA IQ PET scan)")
def test_real_pet_iq_analysis_imports_no_scipy_nor_scikit_image() -> None:
    """The automatic PET image-quality run (detectors of every PET analysis, then the IQ
    run with its fill-ratio fit) uses ``analysis.ndi``'s ports of the SciPy / scikit-image
    calls and ``analysis.least_squares`` for the bounded fit: a run imports no SciPy module
    at all (``scipy.ndimage``, ``scipy.special``, ``scipy.fft``, ``scipy.optimize`` with
    ``scipy.sparse`` and ``scipy.spatial``: about 0.3 s on the benchmark machine,
    bench/README.md) and no scikit-image."""
    printed, modules = _run(_entry("analyze", str(PET_IQ), "--json"))
    analyses = {r["analysis"] for r in json.loads(printed)}
    assert analyses == {"pet.nema_nu2_2018.image_quality"}
    assert _heavy(modules, ("scipy", "skimage")) == []
    assert "scanbench.analysis.least_squares" in modules  # the fill ratio was fitted


CATPHAN = Path(__file__).resolve().parents[3] / "shared/data/ct/catphan/CTP404_FOV150"


@pytest.mark.skipif(not CATPHAN.is_dir(), reason="needs ../shared/data (real CatPhan slices)")
def test_ct_analysis_imports_no_pet_mr_analysis_nor_scipy_signal_stats() -> None:
    printed, modules = _run(_cli("analyze", str(CATPHAN), "--json"))
    (result,) = json.loads(printed)
    assert result["analysis"] == "ct.catphan"
    other = sorted(m for m in modules if m.startswith(("scanbench.analysis.pet",
                                                       "scanbench.analysis.mr")))
    assert other == []
    assert _heavy(modules) == []


ACR_MRI = Path(__file__).resolve().parents[3] / "shared/data/mr/acr/PhilipsAchieva"


@pytest.mark.skipif(not ACR_MRI.is_dir(), reason="needs ../shared/data (real ACR MRI series)")
def test_acr_mri_analysis_imports_no_pet_ct_analysis_nor_scipy() -> None:
    """The ACR MRI suite's only minimiser (the low-contrast pattern fit) is
    ``acr_low_contrast.nelder_mead``, its interpolation, filters and labelling are
    ``analysis.mr.ndi`` and its FFTs ``numpy.fft``: a run imports no SciPy at all (its
    array-API layer alone is about 0.13 s, ``scipy.optimize`` 0.3 s on the benchmark
    machine, bench/README.md), no scikit-image, no PET or CT analysis, nor the heavy
    packages."""
    printed, modules = _run(_cli("analyze", str(ACR_MRI), "--json"))
    analyses = {r["analysis"] for r in json.loads(printed)}
    assert "mr.acr.low_contrast" in analyses, analyses
    other = sorted(m for m in modules if m.startswith(("scanbench.analysis.pet",
                                                       "scanbench.analysis.ct")))
    assert other == []
    assert _heavy(modules, ("scipy", "skimage")) == []


def test_import_scanbench_is_light() -> None:
    _, modules = _run("import scanbench")
    assert _heavy(modules, ("numpy", "pydicom", "scipy", "scanbench.api")) == []


def test_top_level_help_is_light() -> None:
    printed, modules = _run(_cli("--help"))
    assert _heavy(modules, ("numpy", "pydicom", "scipy", "scanbench.simulate",
                            "scanbench.analysis")) == []
    for command in ("analyze", "simulate", "dose", "workflow", "node", "jobs"):
        assert command in printed  # every command still listed


def test_catalogue_is_what_the_modules_register() -> None:
    """The registry's catalogue (read without importing) names every analysis with the
    modality and module that register it; and every registered analysis is in it."""
    analyses = registry.all_analyses()
    listed = {aid: (a.modality, type(a).__module__) for aid, a in analyses.items()
              if aid in registry.CATALOGUE}
    assert listed == registry.CATALOGUE


def test_dose_help_lists_the_shipped_tables() -> None:
    from scanbench.clinical import reference_levels
    from scanbench.clinical.cli import shipped_drl_tables

    assert shipped_drl_tables() == reference_levels.list_tables() != []


def test_top_level_help_builds_no_subcommand_and_reads_as_the_full_tree() -> None:
    """``scanbench --help`` shows each command group by its name and help only, so it does not
    build the groups' ~80 subcommands (Typer evaluates each one's type hints: about 0.04 s,
    bench/README.md); its text is the one a fully built command tree prints."""
    count = ("import typer.main\n_build = typer.main.get_command_from_info\nBUILT = []\n"
             "def _counted(*a, **k):\n    BUILT.append(1)\n    return _build(*a, **k)\n"
             "typer.main.get_command_from_info = _counted\n")
    shallow, _ = _run(count + _cli("--help") + "print('BUILT', len(BUILT))\n")
    full, _ = _run(count + "import importlib, sys, typer\nfrom scanbench import cli\n"
                   "cli.app.add_typer(typer.Typer(), name='simulate', help=cli.SIMULATE_HELP)\n"
                   "for m in dict.fromkeys(cli.COMMAND_MODULES.values()):\n"
                   "    importlib.import_module(m).register(cli.app)\n"
                   "sys.argv = ['scanbench', '--help']\n"
                   "try:\n    cli.app()\nexcept SystemExit:\n    pass\n"
                   "print('BUILT', len(BUILT))\n")
    text, built = shallow.rsplit("BUILT ", 1)
    full_text, full_built = full.rsplit("BUILT ", 1)
    assert text == full_text and "federation" in text and "simulate" in text
    # the top level's own commands only (analyze, dose, node, serve, ...), not the groups'
    assert int(built) < 25 < int(full_built), (built, full_built)


def test_no_arguments_prints_the_light_top_level_help() -> None:
    """``scanbench`` alone prints the top-level help (exit 2, Typer's no_args_is_help)
    mounted as for ``--help``: without the virtual scanners (about 1 s of SciPy and
    phantoms)."""
    probe = ("import sys\nfrom scanbench.cli import main\nsys.argv = ['scanbench']\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 2, exc.code\n")
    printed, modules = _run(probe)
    assert "federation" in printed and "simulate" in printed
    assert _heavy(modules, ("numpy", "scipy", "scanbench.simulate")) == []
