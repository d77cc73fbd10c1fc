"""Entity tags over pieces and back (`rasa_kd.nlu_data.entity_tags`), and the joint teacher
(`rasa_kd.teachers.tag_head`): an intent classifier that also tags the data's entities."""
import json
from pathlib import Path

import numpy as np
import pytest

from conftest import LABEL_SETTINGS, TINY_TEACHER_SETTINGS, toy_augment_options
from rasa_kd.formats.nlu_yaml import Example, read_examples, write_examples
from rasa_kd.nlu_data.entity_tags import (IGNORE, OUTSIDE, covering_pieces, entity_spans, entity_types, piece_tags,
                                          spread_to_pieces, tag_names)
from rasa_kd.teachers.folder import TeacherFolder, load_tokenizer

from test_entities import entity_examples

TAGS = tag_names(["city", "topping"])


def entity(text, surface, kind, occurrence=0):
    start = -1
    for _ in range(occurrence + 1):
        start = text.index(surface, start + 1)
    return {"start": start, "end": start + len(surface), "entity": kind, "value": surface}


CASES = [  # text, entities: multi-piece words, non-ASCII, punctuation, start and end of the text
    ("pepperoni pizza please", [("pepperoni", "topping")]),
    ("i want jalapeño pizza now", [("jalapeño", "topping")]),
    ("a slice, anchovies!", [("anchovies", "topping")]),
    ("weather in são paulo?", [("são paulo", "city")]),
    ("forecast for zürich", [("zürich", "city")]),
]


def encode(tokenizer, text):
    encoded = tokenizer([text], return_offsets_mapping=True)
    return encoded["offset_mapping"][0], encoded.word_ids(0)


def one_hot(tags):
    probabilities = np.zeros((len(tags), len(TAGS)), dtype=np.float32)
    for row, tag in enumerate(tags):
        probabilities[row, OUTSIDE_ID if tag == IGNORE else tag] = 1.0
    return probabilities


OUTSIDE_ID = TAGS.index(OUTSIDE)


def test_tag_names_are_outside_then_b_and_i_per_type_in_sorted_order():
    examples = [Example("x", "a", [{"start": 0, "end": 1, "entity": "topping"}]),
                Example("y", "a", [{"start": 0, "end": 1, "entity": "city"}])]
    assert entity_types(examples) == ["city", "topping"]
    assert tag_names(entity_types(examples)) == ["O", "B-city", "I-city", "B-topping", "I-topping"]


@pytest.mark.parametrize("labelling", ["first", "all"])
@pytest.mark.parametrize("text, marked", CASES)
def test_gold_tags_decode_back_to_the_gold_spans(tiny_bert_dir, text, marked, labelling):
    tokenizer = load_tokenizer(str(tiny_bert_dir))
    offsets, word_ids = encode(tokenizer, text)
    gold = [entity(text, surface, kind) for surface, kind in marked]
    tags = piece_tags(offsets, word_ids, gold, TAGS, labelling)
    assert tags[0] == IGNORE and tags[-1] == IGNORE  # [CLS], [SEP]
    if labelling == "first":  # later pieces of a word carry no tag
        assert all(tag == IGNORE for tag, word, previous in zip(tags[1:], word_ids[1:], word_ids)
                   if word is not None and word == previous)
    decoded = entity_spans(one_hot(tags), offsets, word_ids, TAGS, labelling)
    assert [(e["start"], e["end"], e["entity"]) for e in decoded] == [(g["start"], g["end"], g["entity"]) for g in gold]
    assert all(e["confidence"] == 1.0 for e in decoded)


def test_adjacent_entities_of_one_type_stay_apart(tiny_bert_dir):
    text = "cheese pepperoni"
    gold = [entity(text, "cheese", "topping"), entity(text, "pepperoni", "topping")]
    offsets, word_ids = encode(load_tokenizer(str(tiny_bert_dir)), text)
    tags = piece_tags(offsets, word_ids, gold, TAGS, "all")
    assert [TAGS[t] for t in tags if t != IGNORE][:2] == ["B-topping", "B-topping"]
    decoded = entity_spans(one_hot(tags), offsets, word_ids, TAGS, "all")
    assert [(e["start"], e["end"]) for e in decoded] == [(0, 6), (7, 16)]


def test_an_inside_tag_after_outside_starts_an_entity():
    probabilities = one_hot([OUTSIDE_ID, TAGS.index("I-city"), TAGS.index("I-city")])
    spans = entity_spans(probabilities, [(0, 2), (3, 5), (6, 8)], [0, 1, 2], TAGS, "all")
    assert spans == [{"start": 3, "end": 8, "entity": "city", "confidence": 1.0}]


def test_a_first_labelled_tagging_spreads_to_the_later_pieces_of_each_word(tiny_bert_dir):
    """`first` decodes words from their first piece; spread, every piece decodes to the same span."""
    text = "weather in são paulo?"
    offsets, word_ids = encode(load_tokenizer(str(tiny_bert_dir)), text)
    gold = [entity(text, "são paulo", "city")]
    first = one_hot(piece_tags(offsets, word_ids, gold, TAGS, "first"))
    spread = spread_to_pieces(np.log(first + 1e-6), offsets, word_ids, TAGS)
    inside = [TAGS[i] for i, (start, _) in zip(spread.argmax(axis=1), offsets) if start >= gold[0]["start"]][:-1]
    assert inside[0] == "B-city" and set(inside[1:]) == {"I-city"}  # all but the "?"
    decoded = entity_spans(np.exp(spread), offsets, word_ids, TAGS, "all")
    assert [(e["start"], e["end"]) for e in decoded] == [(gold[0]["start"], gold[0]["end"])]


def test_entity_scores_count_whole_entities():
    from rasa_kd.evaluation.metrics import entity_scores

    text = "pizza with pepperoni in são paulo"
    gold = [entity(text, "pepperoni", "topping"), entity(text, "são paulo", "city")]
    half = [entity(text, "pepperoni", "topping"), entity(text, "são", "city")]  # a span cut short is wrong
    assert entity_scores([gold], [gold])["entity_f1"] == 1.0
    scores = entity_scores([gold, []], [half, [entity(text, "pizza", "topping")]])
    assert scores["gold_entities"] == 2 and scores["entity_recall"] == 0.5
    assert scores["entity_precision"] == pytest.approx(1 / 3)


def test_covering_pieces_finds_the_piece_under_each_first_character():
    pieces = np.array([[0, 5], [6, 8], [8, 12]])
    assert covering_pieces([[0, 2], [2, 5], [6, 7], [9, 12], [5, 6], [13, 14]], pieces).tolist() == [0, 0, 1, 2, 1, -1]
    assert covering_pieces([[0, 1]], np.zeros((0, 2))).tolist() == [-1]


@pytest.fixture(scope="module")
def joint_teacher(tmp_path_factory, tiny_bert_dir, toy_nlu):
    from rasa_kd.teachers.fine_tune import TeacherOptions, train_from_options

    folder = tmp_path_factory.mktemp("joint")
    train, dev = entity_examples(), [e for e in entity_examples() if "pizza" in e.text][:4]
    write_examples(folder / "train.yml", read_examples(toy_nlu["train"]) + train)
    write_examples(folder / "dev.yml", read_examples(toy_nlu["dev"]) + dev)
    # all pieces: the tiny random BERT spells most entity words letter by letter, and learns them
    # with every piece tagged (with first pieces only it stays at one intent for two epochs and stops)
    settings = {**TINY_TEACHER_SETTINGS, "epochs": 15, "patience": 15, "labelling": "all", "entities": "auto"}
    metrics = train_from_options(TeacherOptions(train=folder / "train.yml", dev=folder / "dev.yml",
                                                model=str(tiny_bert_dir), out=folder / "teacher", **settings))
    return folder / "teacher", metrics


def test_joint_teacher_writes_its_tag_head_and_scores_entities_on_dev(joint_teacher):
    path, metrics = joint_teacher
    assert json.loads((path / "tags.json").read_text()) == TAGS
    assert (path / "tag_head.safetensors").is_file()
    assert metrics["tags"] == TAGS and metrics["dev"]["entity_f1"] > 0.5
    assert all("dev_entity_f1" in epoch for epoch in metrics["history"])


def test_joint_teacher_tags_a_training_sentence_and_keeps_its_intents(joint_teacher):
    from rasa_kd.teachers.folder import predict_tag_logits

    teacher = TeacherFolder(joint_teacher[0])
    text = "pizza with pepperoni please"
    logits = predict_tag_logits(teacher.joint, teacher.tokenizer, [text], teacher.max_length)[0]
    offsets, word_ids = encode(teacher.tokenizer, text)
    probabilities = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    spans = entity_spans(probabilities, offsets, word_ids, teacher.tags, teacher.labelling)
    assert [(text[e["start"]:e["end"]], e["entity"]) for e in spans] == [("pepperoni", "topping")]
    # the intent logits are the classifier's own: the head adds, it changes nothing
    joint_intents = teacher.joint(**{k: v for k, v in teacher.tokenizer([text], return_tensors="pt").items()
                                     if k != "token_type_ids"}).logits.detach().numpy()
    assert np.allclose(joint_intents, teacher.predict_logits([text]), atol=1e-5)


def test_data_without_entities_or_entities_off_gives_an_intent_only_teacher(tiny_teacher_dir, tmp_path,
                                                                            tiny_bert_dir, joint_teacher):
    from rasa_kd.teachers.fine_tune import TeacherOptions, train_from_options

    assert not (tiny_teacher_dir / "tags.json").exists() and TeacherFolder(tiny_teacher_dir).tags is None
    train = joint_teacher[0].parent / "train.yml"
    settings = {**TINY_TEACHER_SETTINGS, "epochs": 1}
    metrics = train_from_options(TeacherOptions(train=train, model=str(tiny_bert_dir), out=tmp_path / "t",
                                                **settings))  # entities off: the default
    assert "tags" not in metrics and not (tmp_path / "t" / "tags.json").exists()


def test_the_multilingual_sentence_encoder_tags_thai_pieces(tiny_use, tmp_path):
    """USE-m has one vector per piece (its n-gram token vectors) for the head to read, and Thai
    has no spaces: with `all` an entity is a run of pieces inside one word."""
    from rasa_kd.teachers.fine_tune import TeacherOptions, train_from_options
    from rasa_kd.teachers.folder import predict_tag_logits

    alarm, rain = "ตั้งนาฬิกาปลุก", "ฝนตกวันนี้"
    examples = [Example(alarm, "alarm", [entity(alarm, "นาฬิกา", "device")]),
                Example(rain, "weather", [entity(rain, "วันนี้", "date")])] * 4
    write_examples(tmp_path / "train.yml", examples)
    settings = {**TINY_TEACHER_SETTINGS, "epochs": 2, "labelling": "all", "entities": "auto"}
    metrics = train_from_options(TeacherOptions(train=tmp_path / "train.yml", dev=tmp_path / "train.yml",
                                                model=str(tiny_use["base"]), out=tmp_path / "t", **settings))
    teacher = TeacherFolder(tmp_path / "t")
    assert metrics["tags"] == teacher.tags == ["O", "B-date", "I-date", "B-device", "I-device"]
    logits = predict_tag_logits(teacher.joint, teacher.tokenizer, [alarm], teacher.max_length)[0]
    assert logits.shape == (len(teacher.encode([alarm])[0]), 5)


# ---------------------------------------------------------------- tags on the transfer set


@pytest.fixture(scope="module")
def tagged_transfer(joint_teacher, toy_nlu, toy_vectors, tmp_path_factory):
    from rasa_kd.transfer.augment import augment
    from rasa_kd.transfer.label import LabelOptions, label

    folder = tmp_path_factory.mktemp("tagged")
    augment(toy_augment_options(toy_nlu, toy_vectors, folder / "transfer", train=joint_teacher[0].parent / "train.yml",
                                size=200))
    label(LabelOptions(teacher=[joint_teacher[0]], transfer=folder / "transfer", out=folder / "labelled",
                       **LABEL_SETTINGS))
    return folder / "labelled"


def test_a_joint_teacher_labels_every_sentence_with_tags_per_piece(tagged_transfer, joint_teacher):
    from rasa_kd.formats.transfer_set import open_transfer

    transfer = open_transfer(tagged_transfer, labelled=True)
    teacher = TeacherFolder(joint_teacher[0])
    assert transfer.tags == TAGS and transfer.meta["version"] == 2 and transfer.meta["tags"] == len(TAGS)
    rows = transfer.dataset.select(range(0, len(transfer.dataset), 17))
    # intents and tags came from one forward pass: the same as the classifier's and the tagger's own
    assert np.allclose(np.array(rows["logits"]), teacher.predict_logits(rows["text"]), atol=1e-5)
    expected = teacher.predict_tags(rows["text"])
    for row, (logits, spans) in zip(rows, expected):
        assert np.allclose(np.array(row["tag_logits"]), logits, atol=1e-5)
        assert [tuple(span) for span in row["tag_spans"]] == [tuple(span) for span in spans]
        assert all(row["text"][start:end].strip() for start, end in row["tag_spans"])


def test_labelling_runs_a_joint_teachers_backbone_once_per_batch(tagged_transfer, joint_teacher, tmp_path):
    import math

    import torch

    from rasa_kd.transfer.label import LabelOptions, label

    backbone = type(TeacherFolder(joint_teacher[0]).base_model)
    calls = []
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda module, args, output: calls.append(1) if isinstance(module, backbone) else None)
    try:
        meta = label(LabelOptions(teacher=[joint_teacher[0]], transfer=tagged_transfer, out=tmp_path / "again",
                                  **LABEL_SETTINGS))
    finally:
        hook.remove()
    assert len(calls) == math.ceil(meta["rows"] / LABEL_SETTINGS["batch_size"])


def test_a_set_labelled_before_tags_reads_as_intent_only(toy_transfer_labelled):
    from rasa_kd.formats.transfer_set import open_transfer

    transfer = open_transfer(toy_transfer_labelled, labelled=True)
    assert transfer.tags is None and "tag_logits" not in transfer.dataset.column_names


def test_an_intent_only_teacher_beside_a_joint_one_leaves_the_tags_to_it(joint_teacher, tiny_teacher_dir,
                                                                          tagged_transfer, tmp_path):
    """An ensemble's intent logits are averaged over all its teachers, its tags over the joint ones."""
    from rasa_kd.formats.transfer_set import open_transfer
    from rasa_kd.transfer.label import LabelOptions, label

    # the toy teacher knows the toy intents only; the joint teacher's labels include the same four
    assert TeacherFolder(tiny_teacher_dir).labels == TeacherFolder(joint_teacher[0]).labels
    label(LabelOptions(teacher=[tiny_teacher_dir, joint_teacher[0]], transfer=tagged_transfer, out=tmp_path / "out",
                       **LABEL_SETTINGS))
    both, joint_only = open_transfer(tmp_path / "out", labelled=True), open_transfer(tagged_transfer, labelled=True)
    assert both.dataset["tag_logits"][:20] == joint_only.dataset["tag_logits"][:20]
    assert both.dataset["logits"][:20] != joint_only.dataset["logits"][:20]


def test_tags_without_their_columns_are_one_line(tagged_transfer, tmp_path):
    import shutil

    from rasa_kd.errors import UserError
    from rasa_kd.formats.transfer_set import open_transfer

    broken = shutil.copytree(tagged_transfer, tmp_path / "broken")
    (broken / "tags.json").unlink()
    with pytest.raises(UserError, match="tags.json and the columns"):
        open_transfer(broken, labelled=True)


# ---------------------------------------------------------------- the student's token head

TINY_BILSTM = ["--hidden-size", "16", "--fc-size", "16", "--batch-size", "16", "--learning-rate", "1e-2"]


@pytest.fixture(scope="module")
def tagging_student(tagged_transfer, joint_teacher, tmp_path_factory):
    from rasa_kd.students import distil

    out = tmp_path_factory.mktemp("tagging") / "student"
    dev = joint_teacher[0].parent / "dev.yml"
    manifest = distil.distil(distil.parse(["--transfer", tagged_transfer, "--dev", dev, "--out", out, *TINY_BILSTM,
                                           "--epochs", "20", "--patience", "0"]))
    return out, manifest


def test_a_student_learns_the_teachers_tags_from_the_same_forward_pass(tagging_student):
    from rasa_kd.students import load

    path, manifest = tagging_student
    assert manifest["tags"] == TAGS and manifest["config"]["n_tags"] == len(TAGS) and manifest["format_version"] == 2
    assert manifest["metrics"]["dev"]["entity_f1"] > 0.5
    assert [h["selection"] for h in manifest["recipe"]["dev_history"]]  # epochs chosen on intents and entities
    student = load(path)
    # sentences kept out of training (the toy intents use "pepperoni" and "cheese" without entities)
    pizza, city = student.analyse(["i want mushrooms pizza now", "forecast for zürich, please"])
    assert student.labels[int(np.argmax(pizza.probabilities))] == "order_pizza"
    assert [(e["start"], e["end"], e["entity"]) for e in pizza.entities] == [(7, 16, "topping")]
    assert [(e["start"], e["end"], e["entity"]) for e in city.entities] == [(13, 19, "city")]
    assert 0 < pizza.entities[0]["confidence"] <= 1


def test_the_originals_gold_tags_reach_the_student_loss(tagging_student, tagged_transfer):
    import torch
    import torch.nn.functional as F

    from rasa_kd.formats.transfer_set import open_transfer
    from rasa_kd.students import data
    from rasa_kd.students.losses import tag_loss
    from rasa_kd.students.tokenizers import load_tokenizer as student_tokenizer

    path, manifest = tagging_student
    tokenizer = student_tokenizer(path, manifest["tokenizer"])
    transfer = open_transfer(tagged_transfer, labelled=True)
    dataset = data.training_dataset(transfer, tokenizer)
    rows, sources = [dataset[i] for i in range(len(dataset))], transfer.dataset["source"]
    assert all(set(row["gold_tags"]) == {IGNORE} for row, source in zip(rows, sources) if source != "original")
    tagged = [row for row, source in zip(rows, sources)
              if source == "original" and set(row["gold_tags"]) - {IGNORE, OUTSIDE_ID}]
    assert tagged and all(len(row["gold_tags"]) == len(row["teacher_tags"]) for row in tagged)

    batch = data.Collator(tokenizer.pad_id)(tagged[:4])
    student_tags = torch.randn(batch["teacher_tags"].shape)
    soft = tag_loss(student_tags, batch["teacher_tags"], batch["tag_mask"])
    hard = F.cross_entropy(student_tags.reshape(-1, len(TAGS)), batch["gold_tags"].reshape(-1), ignore_index=IGNORE)
    assert tag_loss(student_tags, batch["teacher_tags"], batch["tag_mask"], batch["gold_tags"], 0.0) == soft
    mixed = tag_loss(student_tags, batch["teacher_tags"], batch["tag_mask"], batch["gold_tags"], 0.25)
    assert torch.isclose(mixed, 0.75 * soft + 0.25 * hard)

    transfer.dataset = transfer.dataset.remove_columns(["entities"])  # a version-1 set: the teacher's tags alone
    assert "gold_tags" not in data.training_dataset(transfer, tokenizer)[0]


def test_the_onnx_student_gives_the_same_entities_in_one_call(tagging_student, tmp_path):
    import shutil

    from rasa_kd.students import load
    from rasa_kd.students.export import export

    path = shutil.copytree(tagging_student[0], tmp_path / "student")
    summary = export(path, onnx=True, quantized=True, data=Path(tagging_student[1]["recipe"]["dev"]))
    assert summary["int8"]["entity_f1_pytorch"] > 0  # the deployed runtime is chosen on entities too
    assert "entity F1" in summary["runtime_reason"] and summary["int8"]["data_entities"] > 0
    texts = ["i want mushrooms pizza now", "weather in lisbon?", "forecast for zürich, please", "hello"]
    def spans(entities):
        return [[(e["start"], e["end"], e["entity"]) for e in row] for row in entities]

    torch_entities = load(path, runtime="pytorch").entities(texts)
    for runtime in ("onnx", "int8"):
        entities = load(path, runtime=runtime).entities(texts)
        assert spans(entities) == spans(torch_entities)
        assert [e["confidence"] for row in entities for e in row] == pytest.approx(
            [e["confidence"] for row in torch_entities for e in row], abs=1e-4 if runtime == "onnx" else 0.05)
    assert [o.name for o in load(path, runtime="onnx").backend.session.get_outputs()][-1] == "tag_logits"
    import onnx

    from rasa_kd.students.export import tag_head_nodes

    head = tag_head_nodes(path / "model.onnx")  # the token head stays float in the int8 model
    assert head and all(name.startswith("/tag_classifier/") for name in head)
    int8_ops = {node.name: node.op_type for node in onnx.load(str(path / "model.int8.onnx")).graph.node}
    assert {int8_ops[name] for name in head} <= {"MatMul", "Add", "Gemm"}
