"""`rasa-kd augment --method rules` and the transfer-set format."""
import json
import random
from pathlib import Path

import datasets
import pytest

from conftest import TOY_FILLER, TOY_INTENTS, argv_of, run_cli, stage_parser, toy_augment_options
from rasa_kd.formats import transfer_set
from rasa_kd.formats.nlu_yaml import read_examples, write_examples
from rasa_kd.options import from_namespace
from rasa_kd.transfer import augment
from rasa_kd.transfer.augment import AugmentOptions


def test_transfer_set_format_and_only_new_unique_sentences(toy_transfer, toy_nlu):
    data = transfer_set.open_transfer(toy_transfer, require=transfer_set.COLUMNS).dataset
    assert data.features == transfer_set.features()
    train = read_examples(toy_nlu["train"])
    n = len(train)
    assert data["text"][:n] == [e.text for e in train]
    assert data["intent"][:n] == [e.intent for e in train]
    assert data["parent"][:n] == list(range(n)) and set(data["source"][:n]) == {"original"}
    made = data.select(range(n, len(data)))
    assert len(made) == 400 and set(made["source"]) == {"rules"} and set(made["intent"]) == {""}
    assert all(0 <= p < n for p in made["parent"])
    # version 2: the originals' gold entities (none in the toy intents), unknown for made sentences
    assert [json.loads(e) for e in data["entities"][:n]] == [e.entities for e in train]
    assert set(made["entities"]) == {None}
    keys = [transfer_set.normalised_key(t) for t in data["text"]]
    assert len(set(keys)) == len(keys)
    held_out = {transfer_set.normalised_key(e.text) for name in ("dev", "test") for e in read_examples(toy_nlu[name])}
    assert not held_out & set(keys)
    meta = json.loads((toy_transfer / transfer_set.META_FILE).read_text())
    assert meta["format"] == "rasa-kd-transfer" and meta["version"] == 2
    assert meta["size"] == len(data) and meta["counts"] == {"original": n, "rules": 400}
    assert meta["seed"] == 3 and meta["method"] == "rules" and meta["params"]["rules"]["p_mask"] == 0.1


def test_same_seed_same_set_other_seed_other_set(toy_transfer, toy_nlu, toy_vectors, tmp_path):
    augment.augment(toy_augment_options(toy_nlu, toy_vectors, tmp_path / "again"))
    augment.augment(toy_augment_options(toy_nlu, toy_vectors, tmp_path / "other", seed=4))
    first = datasets.load_from_disk(str(toy_transfer))
    again = datasets.load_from_disk(str(tmp_path / "again"))
    other = datasets.load_from_disk(str(tmp_path / "other"))
    assert first.to_dict() == again.to_dict()
    assert first["text"] != other["text"]


def fully_covered_augmenter(p_mask, p_pos, p_ng, seed=0):
    words = TOY_FILLER + [w for ws in TOY_INTENTS.values() for w in ws]
    neighbours = {w: [f"other{w}"] for w in words}
    params = augment.RuleParams(p_mask=p_mask, p_pos=p_pos, p_ng=p_ng)
    return augment.RuleAugmenter(params, neighbours, random.Random(seed)), words


def test_mask_and_replacement_rates_match_the_settings():
    augmenter, words = fully_covered_augmenter(0.2, 0.3, 0.0)
    rng = random.Random(1)
    masked = replaced = total = 0
    for _ in range(1000):
        tokens = rng.sample(words, 8)
        out = augmenter.perturb(" ".join(tokens)).split()
        assert len(out) == len(tokens)
        masked += sum(o == "[MASK]" for o in out)
        replaced += sum(o == f"other{t}" for o, t in zip(out, tokens))
        total += len(tokens)
    assert abs(masked / total - 0.2) < 0.02
    assert abs(replaced / total - 0.3) < 0.02


def test_ngram_rate_and_shape():
    augmenter, words = fully_covered_augmenter(0.0, 0.0, 0.4)
    rng = random.Random(2)
    cut, lengths = 0, set()
    for _ in range(2000):
        tokens = rng.sample(words, 10)
        out = augmenter.perturb(" ".join(tokens)).split()
        if len(out) < len(tokens):
            cut += 1
            lengths.add(len(out))
            start = tokens.index(out[0])
            assert tokens[start:start + len(out)] == out  # a contiguous n-gram
    assert abs(cut / 2000 - 0.4) < 0.035
    assert lengths == {1, 2, 3, 4, 5}


def test_punctuation_and_case_are_kept_around_replacements():
    augmenter, _ = fully_covered_augmenter(0.0, 1.0, 0.0)
    assert augmenter.perturb("Hello, (pizza)!") == "Otherhello, (otherpizza)!"
    augmenter, _ = fully_covered_augmenter(1.0, 0.0, 0.0)
    assert augmenter.perturb("Hello, pizza?") == "[MASK], [MASK]?"


def test_nearest_neighbours_come_from_the_same_cluster(toy_vectors):
    from rasa_kd.teachers.resources import load_word_vectors

    words, matrix = load_word_vectors(str(toy_vectors))
    neighbours = augment.nearest_neighbours({"pizza", "rain", "unknownword"}, words, matrix, limit=1000, k=3)
    assert set(neighbours) == {"pizza", "rain"}
    assert set(neighbours["pizza"]) <= set(TOY_INTENTS["order_pizza"]) - {"pizza"}
    assert set(neighbours["rain"]) <= set(TOY_INTENTS["weather"]) - {"rain"}


@pytest.mark.parametrize("case, fragment", [
    ("empty_train", "no intent examples"),
    ("out_exists", "--force"),
    ("unknown_method", "available: rules"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(case, fragment, toy_nlu, toy_vectors, tmp_path, capsys):
    out = tmp_path / "transfer_out"
    options = toy_augment_options(toy_nlu, toy_vectors, out)
    if case == "empty_train":
        options.train = tmp_path / "empty.yml"
        write_examples(options.train, [])
    elif case == "out_exists":
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    else:
        options.method = "rules,telepathy"
    status, err = run_cli(["augment", *argv_of(options)], capsys)
    assert status == 2 and len(err) == 1 and fragment in err[0], err
    if case == "out_exists":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()


def test_option_defaults_are_the_command_line_defaults():
    parsed = from_namespace(AugmentOptions, stage_parser("rasa_kd.transfer.augment").parse_args(["--train", "t.yml",
                                                                                       "--out", "o"]))
    assert parsed == AugmentOptions(train=Path("t.yml"), out=Path("o"))
    assert augment.rule_params(parsed) == augment.RuleParams()


@pytest.mark.parametrize("n_train, changes, expected", [
    (40, {}, 10_000),  # the default preset's rule: 10x the training sentences, 10k-40k
    (3000, {}, 30_000),
    (5000, {}, 40_000),
    (40, {"size_factor": 2, "min_size": 500}, 500),
    (40, {"size_factor": 2.5, "min_size": 50}, 100),
    (40, {"size_factor": 1, "min_size": 500, "max_size": 300}, 300),
])
def test_default_size_is_the_factor_clamped_to_min_and_max(n_train, changes, expected):
    assert augment.default_size(n_train, AugmentOptions(**changes)) == expected


@pytest.mark.parametrize("method, n_train, english, installed, expected", [
    ("auto", 300, True, True, ("rules,lm", True)),
    ("auto", augment.LM_MAX_TRAIN + 1, True, True, ("rules", False)),
    ("auto", 300, False, True, ("rules", False)),
    ("auto", 300, True, False, ("rules", False)),
    ("rules", 300, True, True, ("rules", False)),
    ("lm", 5000, False, False, ("lm", True)),
])
def test_auto_augmentation_gives_small_english_data_lm_sentences(method, n_train, english, installed, expected,
                                                                 monkeypatch, caplog):
    monkeypatch.setattr(augment, "lm_installed", lambda: installed)
    with caplog.at_level("WARNING", logger="rasa_kd.transfer.augment"):
        choice = augment.choose_augmentation(method, n_train, english)
    assert (choice.method, choice.conditional) == expected and choice.reason
    # only the one case that would have used the LM says how to get it
    assert ("rasa-kd install smollm2" in caplog.text) == (method == "auto" and english and not installed
                                                           and n_train <= augment.LM_MAX_TRAIN)


@pytest.mark.parametrize("methods, size, lm_size, expected", [
    (["rules", "lm"], 10, None, [5, 5]),
    (["rules", "lm"], 10, 3, [7, 3]),
    (["lm", "rules", "rules"], 10, 4, [4, 3, 3]),
    (["rules", "lm"], 10, 25, [0, 10]),
    (["rules", "rules"], 10, 4, [5, 5]),
])
def test_lm_size_takes_its_share_and_the_others_split_the_rest(methods, size, lm_size, expected):
    assert augment.method_shares(methods, size, lm_size) == expected
