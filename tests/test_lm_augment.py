"""LM augmentation with a tiny randomly-initialised GPT-2 and a tokenizer trained here on toy text."""
import random

import pytest

from rasa_kd.errors import UserError
from rasa_kd.transfer.lm_augment import finetune_lm, intent_quota, load_lm, sample_sentences

COLOURS = ["red", "blue", "green", "yellow", "black", "white", "pink", "grey"]
THINGS = ["car", "house", "cup", "shirt", "door", "bike", "lamp", "chair"]


def toy_pairs(seed=0, n=160):
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        if rng.random() < 0.5:
            pairs.append((f"i like the {rng.choice(COLOURS)} {rng.choice(THINGS)}", "like"))
        else:
            pairs.append((f"please sell my {rng.choice(THINGS)} today", "sell"))
    return pairs


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from conftest import write_tiny_gpt2

    texts = [f"{intent} : {text}" for text, intent in toy_pairs(1, 400)]
    return write_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"), texts)


@pytest.fixture(scope="module")
def finetuned(tiny_gpt2, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "lm"
    metrics = finetune_lm(str(tiny_gpt2), toy_pairs(2), toy_pairs(3, 40), out, epochs=8,
                          learning_rate=5e-3, batch_size=16, seed=0)
    return out, metrics


def test_finetuning_lowers_the_dev_loss(finetuned):
    _, metrics = finetuned
    assert metrics["dev_loss_after"] < 0.7 * metrics["dev_loss_before"]


def test_sampling_returns_exactly_n_new_unique_sentences_reproducibly(finetuned, tmp_path):
    lm_dir, _ = finetuned
    train = toy_pairs(2)
    first = sample_sentences(lm_dir, tmp_path / "a", 30, train, seed=7, batch_size=16, progress=False)
    second = sample_sentences(lm_dir, tmp_path / "b", 30, train, seed=7, batch_size=16, progress=False)
    texts = [t for t, _ in first]
    assert len(texts) == 30 and len(set(texts)) == 30
    assert not set(texts) & {t for t, _ in train}
    assert first == second


def test_conditional_sampling_respects_quota(finetuned, tmp_path):
    lm_dir, _ = finetuned
    quota = {"like": 12, "sell": 5}
    rows = sample_sentences(lm_dir, tmp_path / "c", 17, toy_pairs(2), seed=1, quota=quota, batch_size=16,
                            draw_budget=50, progress=False)
    assert sum(intent == "like" for _, intent in rows) == 12
    assert sum(intent == "sell" for _, intent in rows) == 5


def test_intent_quota_proportional_and_balanced():
    intents = ["a"] * 6 + ["b"] * 3 + ["c"]
    assert intent_quota(intents, 20, balance=False) == {"a": 12, "b": 6, "c": 2}
    balanced = intent_quota(intents, 20, balance=True)
    assert sum(balanced.values()) == 20 and max(balanced.values()) - min(balanced.values()) <= 1


def test_interrupted_sampling_resumes_without_duplicates(finetuned, tmp_path):
    lm_dir, _ = finetuned
    work = tmp_path / "resume"
    complete = sample_sentences(lm_dir, tmp_path / "full", 40, toy_pairs(2), seed=3, batch_size=8, progress=False)
    sample_sentences(lm_dir, work, 12, toy_pairs(2), seed=3, batch_size=8, progress=False)  # "killed" after 12
    shards = sorted((work / "shards").glob("shard-*.json"))
    shards[-1].unlink()  # the shard being written when it was killed never landed
    resumed = sample_sentences(lm_dir, work, 40, toy_pairs(2), seed=3, batch_size=8, progress=False)
    assert len({t for t, _ in resumed}) == 40
    assert resumed == complete


def test_missing_model_gives_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match="causal LM not found.*local folder"):
        load_lm("no-such-org/no-such-model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a model folder"):
        load_lm(str(tmp_path / "empty"))


def test_augment_command_lm_and_mixed_methods(tmp_path, finetuned, toy_nlu, toy_vectors):
    import datasets

    from rasa_kd.transfer.augment import AugmentOptions, augment
    from rasa_kd.formats.nlu_yaml import read_examples

    lm_dir, _ = finetuned
    out = tmp_path / "transfer"
    augment(AugmentOptions(method="rules,lm", train=toy_nlu["train"], exclude=[toy_nlu["dev"]], size=40, seed=5,
                           out=out, vectors=str(toy_vectors), lm_from=lm_dir, sample_batch_size=16, quiet=True,
                           outliers="none"))
    data = datasets.load_from_disk(str(out))
    sources = data["source"]
    assert sources.count("lm") == 20 and sources.count("rules") == 20
    train = {e.text for e in read_examples(toy_nlu["train"])} | {e.text for e in read_examples(toy_nlu["dev"])}
    generated = [t for t, s in zip(data["text"], sources) if s != "original"]
    assert len(set(generated)) == 40 and not set(generated) & train
    assert all(p == -1 for p, s in zip(data["parent"], sources) if s == "lm")


def test_augment_command_missing_lm_is_one_line(tmp_path, toy_nlu, capsys, monkeypatch):
    from rasa_kd import cli

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    status = cli.main(["augment", "--method", "lm", "--lm", "no-such-org/no-such-lm", "--train",
                       str(toy_nlu["train"]), "--size", "5", "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "causal LM not found" in err[0]
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.lm-work").exists()


def test_a_rerun_on_the_same_data_reuses_the_cached_samples_without_fine_tuning(tmp_path, tiny_gpt2, toy_nlu,
                                                                                monkeypatch):
    """The samples of an LM fine-tuned here are named by what fixes them (training data, LM, settings,
    seed) and kept in the cache folder: another output folder on the same data (as `rasa train` after
    `rasa-kd pipeline`) gets the same sentences and fine-tunes nothing; other data samples afresh."""
    import datasets

    from rasa_kd.teachers.install import cache_root
    from rasa_kd.transfer.augment import AugmentOptions, augment

    monkeypatch.setenv("RASA_KD_CACHE", str(tmp_path / "cache"))

    def lm_sentences(out, train):
        augment(AugmentOptions(method="lm", train=train, size=12, seed=3, out=out, lm=str(tiny_gpt2),
                               lm_epochs=1, lm_batch_size=16, sample_batch_size=16, conditional=True, quiet=True))
        data = datasets.load_from_disk(str(out))
        return [t for t, s in zip(data["text"], data["source"]) if s == "lm"]

    first = lm_sentences(tmp_path / "first", toy_nlu["train"])
    assert (tmp_path / "first.lm-work" / "lm" / "config.json").is_file()
    cached = list((cache_root() / "lm-samples").iterdir())
    assert len(first) == 12 and len(cached) == 1
    assert lm_sentences(tmp_path / "again", toy_nlu["train"]) == first
    assert not (tmp_path / "again.lm-work").exists()  # nothing fine-tuned
    lm_sentences(tmp_path / "other", toy_nlu["dev"])
    assert (tmp_path / "other.lm-work" / "lm").is_dir() and len(list((cache_root() / "lm-samples").iterdir())) == 2


def test_samples_end_within_their_intents_length_bound(finetuned, tmp_path):
    import math

    from rasa_kd.transfer.lm_augment import LENGTH_MARGIN

    lm_dir, _ = finetuned
    train = toy_pairs(2)
    rows = sample_sentences(lm_dir, tmp_path / "d", 20, train, seed=2, quota={"like": 10, "sell": 10}, batch_size=16,
                            progress=False)
    _, tokenizer = load_lm(str(lm_dir))

    def tokens(text):  # with the EOS that ends it
        return len(tokenizer(text, add_special_tokens=False)["input_ids"]) + 1

    bound = {intent: math.ceil(LENGTH_MARGIN * max(tokens(t) for t, i in train if i == intent)) for _, intent in train}
    assert len(rows) == 20
    assert all(tokens(text) <= bound[intent] for text, intent in rows)


def test_an_intent_the_lm_has_little_new_for_stops_at_its_draw_budget(finetuned, tmp_path, caplog):
    """'please sell my <thing> today' has 8 forms, all in training: the LM soon only repeats them."""
    import json

    lm_dir, _ = finetuned
    work = tmp_path / "budget"
    with caplog.at_level("INFO", logger="rasa_kd.transfer.lm_augment"):
        rows = sample_sentences(lm_dir, work, 40, toy_pairs(2), seed=4, quota={"sell": 40}, batch_size=16,
                                draw_budget=2, progress=False)
    drawn = sum(json.loads(p.read_text())["drawn"] for p in (work / "shards").glob("shard-*.json"))
    assert len(rows) < 40 and 2 * 40 <= drawn < 2 * 40 + 16
    assert "ran out of new sentences for 1 intent" in caplog.text
    again = sample_sentences(lm_dir, work, 40, toy_pairs(2), seed=4, quota={"sell": 40}, batch_size=16,
                             draw_budget=2, progress=False)
    assert again == rows  # from the shards: the budget is spent, nothing is drawn again


def test_the_rules_make_what_the_lm_could_not(tmp_path, finetuned, toy_nlu, toy_vectors, monkeypatch):
    import datasets

    from rasa_kd.transfer import lm_augment
    from rasa_kd.transfer.augment import AugmentOptions, augment

    monkeypatch.setattr(lm_augment, "DRAW_BUDGET", 0.2)  # 4 samples for 20 wanted
    lm_dir, _ = finetuned
    out = tmp_path / "transfer"
    meta = augment(AugmentOptions(method="rules,lm", train=toy_nlu["train"], size=40, seed=5, out=out,
                                  vectors=str(toy_vectors), lm_from=lm_dir, sample_batch_size=8, quiet=True))
    sources = datasets.load_from_disk(str(out))["source"]
    assert sources.count("lm") <= 8 and sources.count("lm") + sources.count("rules") == 40
    assert meta["methods"]["rules"]["after_lm"] == 40 - 20 - sources.count("lm")
