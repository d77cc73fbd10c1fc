"""`rasa-kd pipeline`: stage order, the preset's recipe, skipping unchanged stages, re-running
a stage and everything after it when an option changes, and the config snippet."""
import json
import re
from pathlib import Path

import pytest

from rasa_kd.pipeline import PipelineOptions, recommended_threshold, run_pipeline
from rasa_kd.students.unknown import DEFAULT_SCORE

STAGES = ["split", "teacher", "augment", "label", "distil", "export", "fallback", "evaluate-teacher",
          "evaluate-student"]


def stage_lines(output: str):
    return re.findall(r"^== ([\w-]+): (up to date|\d+\.\d s)", output, flags=re.M)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, toy_nlu, tiny_bert_dir):
    out = tmp_path_factory.mktemp("pipeline") / "build"
    options = PipelineOptions(nlu=toy_nlu["train"], test=toy_nlu["test"], out=out, teacher=[str(tiny_bert_dir)],
                              preset="fast", size=200, epochs=2)
    return options, run_pipeline(options)


def test_stages_run_in_order_and_deploy_the_exported_runtime(first_run, capsys):
    options, result = first_run
    assert list(result["timings"]) == STAGES
    student = options.out / "student"
    manifest = json.loads((student / "student.json").read_text())
    assert manifest["recipe"]["preset"] == "fast" and manifest["recipe"]["epochs"] == 2
    assert manifest["recipe"]["embedding_mode"] == "non-static" and manifest["tokenizer"]["pruned"]
    assert manifest["runtime"] in ("int8", "onnx")
    assert manifest["fallback"]["score"] == DEFAULT_SCORE and (student / "fallback.safetensors").is_file()
    scored = result["metrics"]["student"]
    assert scored["kind"] == {"int8": "student-onnx-int8", "onnx": "student-onnx"}[manifest["runtime"]]
    assert not list(options.out.glob(".distil-*"))  # the work folder goes once the package is written
    teacher = json.loads((options.out / "teacher" / "metrics.json").read_text())  # small data: refit (auto)
    assert teacher["refit"]["examples"] == teacher["train_examples"] + teacher["dev_examples"]


def test_rerun_skips_every_stage(first_run, capsys):
    options, _ = first_run
    run_pipeline(options)
    output = capsys.readouterr().out
    assert [name for name, state in stage_lines(output) if state == "up to date"] == STAGES
    assert f"student: {options.out / 'student'}" in output and "runtime: auto" in output
    assert f"threshold: {recommended_threshold(options.out / 'student')}" in output


@pytest.mark.parametrize("rerun_earlier", [False, True])
def test_a_record_made_before_an_option_existed(rerun_earlier, tmp_path):
    """Adding an option to a stage does not re-run the stages recorded before it while the
    option is left at its default (benchmark and user builds stay valid); setting it does. An
    option marked `rerun_earlier` (its default changes what the stage makes: outlier exposure in
    augment) re-runs them."""
    from dataclasses import dataclass

    from rasa_kd.options import option
    from rasa_kd.pipeline import Stages

    @dataclass
    class Options:
        size: int = 1
        added: bool = option(False, "an option added later", rerun_earlier=rerun_earlier)

    runs, out = [], tmp_path / "out"

    def action(options):
        out.mkdir(exist_ok=True)
        runs.append(options)

    stages = Stages(tmp_path)
    stages.run_options("stage", Options(), [], out, action)
    record = tmp_path / ".stages" / "stage.json"
    saved = json.loads(record.read_text())
    del saved["options"]["added"]
    record.write_text(json.dumps(saved))
    stages.run_options("stage", Options(), [], out, action)
    assert len(runs) == (2 if rerun_earlier else 1)
    stages.run_options("stage", Options(added=True), [], out, action)
    assert len(runs) == (3 if rerun_earlier else 2)


def test_auto_refits_the_teachers_of_small_data_only():
    from rasa_kd.errors import UserError
    from rasa_kd.pipeline import REFIT_MAX_SENTENCES, choose_refit

    assert choose_refit("auto", REFIT_MAX_SENTENCES)[0] and not choose_refit("auto", REFIT_MAX_SENTENCES + 1)[0]
    assert choose_refit("always", 10 ** 6) == (True, "as configured")
    assert choose_refit("never", 10) == (False, "as configured")
    with pytest.raises(UserError, match="auto, always, never"):
        choose_refit("yes", 10)


def test_a_refit_teacher_keeps_half_of_a_large_dev_share_to_judge_the_student(tmp_path):
    from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples
    from rasa_kd.pipeline import JUDGE_MIN, refit_and_judge_files

    def dev_file(sentences_per_intent: int) -> Path:
        path = tmp_path / f"{sentences_per_intent}" / "dev.yml"
        path.parent.mkdir()
        write_examples(path, [Example(f"{intent} sentence {i}", intent) for intent in ("greet", "bye", "thank")
                              for i in range(sentences_per_intent)])
        return path

    small, large = dev_file(JUDGE_MIN // 3), dev_file(JUDGE_MIN)
    assert refit_and_judge_files(large, False, 0) == (large, large)
    assert refit_and_judge_files(small, True, 0) == (small, small)  # half would be too few to judge on
    teacher_dev, judge_dev = refit_and_judge_files(large, True, 0)
    refit_half, judge_half = ([e.text for e in read_examples(path)] for path in (teacher_dev, judge_dev))
    assert not set(refit_half) & set(judge_half)
    assert sorted(refit_half + judge_half) == sorted(e.text for e in read_examples(large))
    assert len(judge_half) >= JUDGE_MIN and {e.intent for e in read_examples(judge_dev)} == {"greet", "bye", "thank"}
    assert refit_and_judge_files(large, True, 0) == (teacher_dev, judge_dev)  # the same halves every run
    assert [e.text for e in read_examples(judge_dev)] == judge_half
    assert refit_and_judge_files(large, False, 0) == (large, large)  # a later run without the refit
    assert not teacher_dev.exists() and not judge_dev.exists()  # leaves no halves that read as its own


def ran_stages(capsys):
    return [name for name, state in stage_lines(capsys.readouterr().out) if state != "up to date"]


def test_without_a_test_file_it_holds_out_a_split_and_reruns_what_a_change_touches(toy_nlu, tiny_bert_dir,
                                                                                  tmp_path, capsys):
    """The README's main command: no --test, so the pipeline holds out its own test split; then each
    kind of change re-runs its stage and everything after it, and nothing before."""
    import dataclasses
    import shutil

    from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples

    nlu = Path(shutil.copy(toy_nlu["train"], tmp_path / "nlu.yml"))
    # the default teacher (the data's choice: for English, the offline MiniLM package): a tiny random
    # BERT learns too little of the toy task
    options = PipelineOptions(nlu=nlu, out=tmp_path / "build", preset="fast", size=400, epochs=4, quiet=True)
    result = run_pipeline(options)
    assert list(result["timings"]) == STAGES and ran_stages(capsys) == STAGES
    picked = json.loads((options.out / "teacher-choice.json").read_text())
    assert picked["teachers"] == ["minilm"] and picked["reason"] == "English"
    held_out = read_examples(options.out / "data" / "test.yml")
    assert held_out and not {e.text for e in held_out} & {e.text for e in read_examples(options.out / "data" /
                                                                                          "train.yml")}
    teacher, student = (result["metrics"][name]["scores"]["accuracy"] for name in ("teacher", "student"))
    assert student >= 0.5 and student >= 0.8 * teacher  # 4 intents: chance is 0.25

    run_pipeline(dataclasses.replace(options, epochs=3))
    assert ran_stages(capsys) == ["distil", "export", "fallback", "evaluate-student"]
    run_pipeline(dataclasses.replace(options, epochs=3, preset="balanced"))
    assert ran_stages(capsys) == ["distil", "export", "fallback", "evaluate-student"]
    run_pipeline(dataclasses.replace(options, epochs=3, preset="balanced", size=300))
    assert ran_stages(capsys) == ["augment", "label", "distil", "export", "fallback", "evaluate-student"]
    other_teacher = Path(shutil.copytree(tiny_bert_dir, tmp_path / "other-teacher"))
    changed = dataclasses.replace(options, epochs=3, preset="balanced", size=300, teacher=[str(other_teacher)])
    run_pipeline(changed)
    assert ran_stages(capsys) == [stage for stage in STAGES if stage not in ("split", "augment")]
    write_examples(nlu, read_examples(nlu) + [Example("a brand new greeting friend", read_examples(nlu)[0].intent)])
    run_pipeline(changed)
    assert ran_stages(capsys) == STAGES


def test_an_ensemble_of_teachers_and_the_accurate_preset(toy_nlu, tiny_bert_dir, tmp_path):
    """`--teacher` twice fine-tunes one teacher per backbone and labels with their averaged logits."""
    import shutil

    from rasa_kd.students.presets import distil_options

    other = Path(shutil.copytree(tiny_bert_dir, tmp_path / "other-backbone"))
    options = PipelineOptions(nlu=toy_nlu["train"], test=toy_nlu["test"], out=tmp_path / "build",
                              teacher=[str(tiny_bert_dir), str(other)], preset="accurate", size=200, epochs=1,
                              quiet=True)
    result = run_pipeline(options)
    assert list(result["timings"]) == ["split", "teacher-0", "teacher-1", *STAGES[2:]]
    assert all((options.out / f"teacher-{i}" / "config.json").is_file() for i in (0, 1))
    labelled = json.loads((options.out / "transfer-labelled" / "label.json").read_text())
    assert len(labelled["teachers"]) == 2
    recipe = json.loads((options.out / "student" / "student.json").read_text())["recipe"]
    accurate = distil_options("accurate")
    assert recipe["preset"] == "accurate" and recipe["embedding_dim"] == accurate.embedding_dim
    assert recipe["hidden_size"] == accurate.hidden_size

def test_killed_run_resumes_at_the_first_unfinished_stage(toy_nlu, tiny_bert_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "build"
    argv = [sys.executable, "-m", "rasa_kd.cli", "pipeline", "--nlu", str(toy_nlu["train"]), "--test",
            str(toy_nlu["test"]), "--out", str(out), "--teacher", str(tiny_bert_dir), "--preset", "fast",
            "--size", "200", "--epochs", "1", "--quiet"]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env=dict(os.environ, PYTHONUNBUFFERED="1"))
    for line in process.stdout:
        if line.startswith("== label:") and "skipped" not in line:
            process.send_signal(signal.SIGKILL)  # in the middle of labelling
            break
    process.wait()
    assert not (out / "transfer-labelled").exists() and not (out / "student").exists()
    resumed = subprocess.run(argv, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    states = dict(stage_lines(resumed.stdout))
    assert [name for name in ("split", "teacher", "augment") if states[name] == "up to date"] == [
        "split", "teacher", "augment"]
    assert all(states[name] != "up to date" for name in ("label", "distil", "export"))
    assert (out / "student" / "student.json").is_file()


def test_bad_input_is_one_line(toy_nlu, tmp_path):
    import subprocess
    import sys

    empty = tmp_path / "empty.yml"
    empty.write_text('version: "3.1"\nnlu: []\n')
    for nlu, teacher, message in ((empty, "minilm", "no"), (toy_nlu["train"], "no-such-teacher-xyz", "no-such")):
        status = subprocess.run([sys.executable, "-m", "rasa_kd.cli", "pipeline", "--nlu", str(nlu), "--out",
                                 str(tmp_path / "out"), "--teacher", teacher], capture_output=True, text=True,
                                env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
        assert status.returncode == 2 and "Traceback" not in status.stderr, status.stderr[-1500:]
        last = status.stderr.strip().splitlines()[-1]
        assert last.startswith("rasa-kd pipeline: error:") and message in last


def test_test_intents_the_training_data_lacks_stop_before_the_first_stage(toy_nlu, tmp_path, caplog):
    from rasa_kd.errors import UserError
    from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples
    from conftest import stage_parser
    from rasa_kd.pipeline import check_test_intents

    test = tmp_path / "test.yml"
    write_examples(test, read_examples(toy_nlu["test"]) + [Example("play some jazz", "play_music")])
    out = tmp_path / "build"
    options = PipelineOptions(nlu=toy_nlu["train"], test=test, out=out)
    with pytest.raises(UserError, match=r"intents that .* lacks: play_music; .*--allow-unknown-labels"):
        run_pipeline(options)
    assert not out.exists()  # nothing ran
    parsed = stage_parser("rasa_kd.pipeline").parse_args(["--nlu", "n.yml", "--out", "o", "--allow-unknown-labels"])
    assert parsed.allow_unknown_labels
    with caplog.at_level("WARNING", logger="rasa_kd.pipeline"):
        check_test_intents(PipelineOptions(nlu=toy_nlu["train"], test=test, out=out, allow_unknown_labels=True))
    assert "play_music" in caplog.text and "scored as errors" in caplog.text


def test_auto_gives_small_english_data_half_its_transfer_set_from_the_installed_lm(toy_nlu, tiny_bert_dir, tmp_path,
                                                                                 monkeypatch):
    """`--augment auto` with SmolLM2 installed (here a tiny GPT-2 in its cache folder): half the new
    sentences are sampled from the LM fine-tuned with the intent as a prefix, and the student is built."""
    from conftest import write_tiny_gpt2
    from rasa_kd.formats.nlu_yaml import read_examples
    from rasa_kd.teachers.install import model_folder
    from rasa_kd.transfer import augment

    monkeypatch.setenv("RASA_KD_CACHE", str(tmp_path / "cache"))
    texts = [f"{e.intent} : {e.text}" for e in read_examples(toy_nlu["train"])]
    write_tiny_gpt2(model_folder("smollm2"), texts)
    monkeypatch.setattr(augment, "lm_installed", lambda: True)
    options = PipelineOptions(nlu=toy_nlu["train"], test=toy_nlu["test"], out=tmp_path / "build",
                              teacher=[str(tiny_bert_dir)], preset="fast", size=40, epochs=1, augment="auto")
    result = run_pipeline(options)
    meta = json.loads((options.out / "transfer" / "transfer.json").read_text())
    assert meta["method"] == "rules,lm" and meta["params"]["lm"]["conditional"]
    assert meta["counts"]["rules"] + meta["counts"].get("lm", 0) == 40 and meta["counts"].get("lm", 0) > 0
    assert result["metrics"]["student"]["scores"]["accuracy"] >= 0
