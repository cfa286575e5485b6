"""Docs in step with the code: hooks documented with their signatures; commands work as written."""

import inspect
from pathlib import Path

from daeflow.plugin import hookspecs

ROOT = Path(__file__).parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def hooks():
    return [
        (name, function)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, "daeflow_spec")
    ]


def test_there_are_hooks():
    assert {name for name, _ in hooks()} == {
        "register_architectures",
        "register_noise_models",
        "register_objectives",
    }


def test_every_hook_is_documented_with_its_signature():
    guide = GUIDE.read_text()
    for name, function in hooks():
        signature = inspect.signature(function)
        returns = inspect.formatannotation(signature.return_annotation).replace(
            "daeflow.plugin.specs.", ""
        )
        line = f"def {name}({', '.join(signature.parameters)}) -> {returns}"
        assert f"### `{line}`" in guide, f"docs/plugins.md does not document: {line}"


def test_the_closing_hint_is_a_command_that_runs_as_printed(tmp_path):
    """After a run daeflow says how to open the UI; that command must work where it is printed."""
    import shlex
    import subprocess

    from daeflow.cli.training import ui_hint

    hint = ui_hint(f"sqlite:///{tmp_path}/mlflow.db")
    command = hint.split(": ", 1)[1]
    assert command.endswith(f"ui --tracking-uri sqlite:///{tmp_path}/mlflow.db")
    program = shlex.split(command)[: -len(["ui", "--tracking-uri", "x"])]
    done = subprocess.run([*program, "ui", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "Start the MLflow UI" in done.stdout


def test_the_readme_activates_the_venv_before_bare_daeflow_commands():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    first_bare = readme.index("\ndaeflow ")
    assert readme.index("make run") < readme.index(". .venv/bin/activate") < first_bare


def probe_steps(every, epochs: int) -> list[int]:
    """The epochs after which a run of `epochs` epochs logs its probe grid, as run.py sets it."""
    from daeflow.track.callbacks import ImageLogger

    steps = []

    class Recorded(ImageLogger):
        def _log(self, step):
            steps.append(step)
            self.logged = step

    logger = Recorded(None, None, "probe", every)
    for epoch in range(epochs):
        logger.on_epoch_end(epoch)
    logger.on_train_end()
    return steps


def test_the_readme_states_the_probe_cadence_the_runs_follow():
    import math
    import re

    from daeflow.workflow.run import probe_every

    readme = " ".join((ROOT / "docs" / "tracking.md").read_text().split())
    claim = re.search(
        r"after the first epoch, every ceil\(epochs/(\d+)\)-th epoch and the last \(about "
        r"(\d+) grids; with `--time-budget` and no `--epochs`, after epochs 1, 2, 4, 8, \.\.\. "
        r"and the last\)",
        readme,
    )
    assert claim, "docs/tracking.md no longer states when probe grids are logged"
    per, about = int(claim.group(1)), int(claim.group(2))
    for epochs in (1, 7, 20, 25, 100):
        every = math.ceil(epochs / per)
        said = sorted({1, epochs} | {e for e in range(1, epochs + 1) if e % every == 0})
        assert probe_steps(probe_every(epochs), epochs) == said
        assert len(said) <= about + 2
    said = sorted({2**k for k in range(7)} | {100})
    assert probe_steps(probe_every(None), 100) == said


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    import re

    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _links(text: str):
    import re

    return re.findall(r"\]\(([^)\s]+)\)", text)


def test_every_link_between_the_pages_leads_somewhere():
    """README.md and docs/*.md link each other by file and heading; every link must resolve."""
    import re

    broken = []
    for page in [*PAGES, ROOT / "BENCHMARKS.md"]:
        for link in _links(page.read_text()):
            if re.match(r"[a-z]+:", link):
                continue  # a web address
            path, _, anchor = link.partition("#")
            target = (page.parent / path).resolve() if path else page
            if not target.exists():
                broken.append(f"{page.name}: {link}")
            elif anchor and target.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", target.read_text(), re.M)
                if anchor not in {_slug(h) for h in headings}:
                    broken.append(f"{page.name}: {link} (no such heading)")
    assert broken == []


def test_the_readme_is_a_short_path_to_every_topic_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in _links(readme)}
    assert {page.resolve() for page in PAGES[1:]} <= linked, "a docs page is not linked"


def _commands():
    """(page, command, options) of every `daeflow ...` line in the pages' code blocks."""
    import shlex

    for page in PAGES:
        shell, language = [], None  # lines of ```sh (or unnamed) blocks; None: outside
        for line in page.read_text().splitlines():
            if line.startswith("```"):
                language = None if language is not None else line[3:].strip()
            elif language in ("", "sh", "bash"):
                shell.append(line)
        text = "\n".join(shell).replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" #", 1)[0].strip()
            if not line.startswith("daeflow "):
                continue
            words = shlex.split(line.replace("<", "").replace(">", ""))
            yield page.name, words[1], [w.split("=")[0] for w in words[2:] if w.startswith("--")]


def test_every_command_in_the_pages_exists_with_the_options_it_shows():
    """Each `daeflow CMD --option` shown in README.md and docs/ is a command that takes it."""
    from typer.main import get_command

    from daeflow.cli import app

    group = get_command(app)
    shown = list(_commands())
    assert len(shown) > 30
    wrong = []
    for page, name, options in shown:
        command = group.commands.get(name)
        if command is None:
            wrong.append(f"{page}: daeflow {name}")
            continue
        if (command.context_settings or {}).get("ignore_unknown_options"):
            continue  # `daeflow server` hands options it does not know to `mlflow server`
        known = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        wrong += [f"{page}: daeflow {name} {o}" for o in options if o not in known]
    assert wrong == []
