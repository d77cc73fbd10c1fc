"""Writes rasa_kd/transfer/outliers.txt: the generic sentences outlier exposure trains students
to be unsure about (issue 33).

SmolLM2-135M-Instruct (`rasa-kd install smollm2`) is asked, topic by topic, for short questions
and requests people send to a virtual assistant; numbered lines of its answers are cleaned (markup,
quotes and trailing chatter cut, 3-20 words, no long junk words) and deduplicated. Everyday topics
from many domains, so that no assistant's own domain dominates; the label stage drops the ones its
teacher finds close to an assistant's training sentences.

    .venv/bin/python scripts/outlier_corpus.py [--per-topic 8] [--out rasa_kd/transfer/outliers.txt]

Resumable: answers are kept per topic in <out>.work/ until the file is written.
"""
import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOPICS = """cooking pasta; baking bread; vegetarian recipes; coffee; wine; restaurants nearby; food delivery; football;
basketball; tennis; the olympics; running a marathon; yoga; going to the gym; losing weight; sleep problems; a
headache; a cold or flu; dentists; vaccines; pregnancy; raising toddlers; school homework; university
applications; learning spanish; learning to drive; car repairs; buying a used car; electric cars; public
transport; train tickets; flights; hotels; holidays in italy; camping; hiking trails; the weather; climate
change; recycling; gardening; houseplants; pets; dog training; cats; aquarium fish; birds; insects; the ocean;
volcanoes; earthquakes; space and planets; the moon; astronomy; physics; chemistry; biology; mathematics;
history of rome; world war two; ancient egypt; geography; capital cities; mountains; rivers; famous painters;
museums; classical music; pop music; guitar lessons; piano; concerts; movies; tv series; books and novels;
poetry; video games; board games; chess; photography; painting; knitting; woodworking; home repairs; plumbing;
electricity bills; renting an apartment; buying a house; mortgages; furniture; cleaning the house; laundry; a
broken washing machine; a broken phone screen; the internet connection; printers; smartphones; laptops; smart
watches; social media; email; passwords; online shopping; returning a parcel; shoes; clothes sizes; fashion;
haircuts; makeup; perfume; jewellery; weddings; birthdays; gifts; christmas; halloween; religion; philosophy;
politics; elections; law and lawyers; traffic fines; taxes; pensions; the stock market; cryptocurrency; saving
money; credit cards; bank loans; insurance; job interviews; writing a cv; salaries; quitting a job; starting a
business; marketing; office software; meetings; time zones; calendars; alarms and reminders; translations;
dictionaries and word meanings; spelling; jokes; riddles; trivia; celebrities; the royal family; news;
newspapers; magazines; radio; podcasts; theatre; dancing; singing; festivals; zoos; farms; tractors; fishing;
hunting; horses; bicycles; motorbikes; boats; trains; airports; passports and visas; customs rules; currency
exchange; hospitals; pharmacies; medicine side effects; allergies; nutrition; vitamins; diets; hair loss; skin
care; mental health; meditation; friendship; dating; divorce; grandparents; babysitting; elderly care;
funerals; moving house; neighbours; noise complaints; parking; road trips; maps and directions; gas prices;
the post office; libraries; volunteering; charities; the environment; forests; deserts; snow and skiing;
swimming; surfing; beaches; sunscreen; tea; chocolate; cheese; fruit and vegetables; supermarkets; opening
hours; phone plans; tv remote; batteries; solar panels; heating; air conditioning; kitchen appliances;
microwaves; fridges; knives; tools; painting walls; carpets""".split(";")
PROMPTS = ("List 8 short questions people ask a virtual assistant about {topic}.",
           "List 8 short requests people send to a customer service chatbot about {topic}.",
           "List 8 short things people say to a voice assistant about {topic}.")
TOPICS_PER_BATCH = 4
NUMBERED = re.compile(r"^\s*\d+[.)]\s*(.+)$")


def cleaned(line: str):
    text = re.sub(r"\*\*|__|`|#", "", line).strip()
    text = re.sub(r"^(question|request|q|a|user)\s*:\s*", "", text, flags=re.I).strip()
    text = re.split(r'\?\s|\?"|\s[-–—]\s|\s\(', text + " ")[0].strip()
    if "?" not in text and line.strip().endswith("?"):
        text += "?"
    text = text.strip(' "\'“”').strip()
    words = text.split()
    if not 3 <= len(words) <= 20 or any(len(w) > 18 for w in words) or not re.search(r"[a-zA-Z]", text):
        return None
    if any(bad in text.lower() for bad in ("chatbot", "virtual assistant", "voice assistant", "smollm")):
        return None
    return text + ("?" if re.match(r"(what|how|why|when|where|who|which|can|could|is|are|do|does)\b", text.lower())
                   and not text.endswith(("?", ".", "!")) else "")


def answers(model, tokenizer, prompts, seed: int):
    import torch

    torch.manual_seed(seed)
    batch = tokenizer([tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                     add_generation_prompt=True) for p in prompts],
                      return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=150, do_sample=True, temperature=0.8, top_p=0.95,
                             repetition_penalty=1.1, pad_token_id=tokenizer.pad_token_id)
    return [tokenizer.decode(row[batch["input_ids"].shape[1]:], skip_special_tokens=True) for row in out]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "rasa_kd" / "transfer" / "outliers.txt")
    args = parser.parse_args(argv)
    from rasa_kd.cli import quiet_environment

    quiet_environment()
    import torch
    from tqdm import tqdm
    from rasa_kd.transfer.lm_augment import DEFAULT_LM, load_lm

    torch.set_num_threads(2)
    model, tokenizer = load_lm(DEFAULT_LM)
    tokenizer.padding_side = "left"
    model.eval()
    work = args.out.with_suffix(".work")
    work.mkdir(parents=True, exist_ok=True)
    topics = [" ".join(t.split()) for t in TOPICS if t.strip()]
    todo = [k for k in range(len(topics)) if not (work / f"{k:04d}.json").exists()]
    for start in tqdm(range(0, len(todo), TOPICS_PER_BATCH), desc="topics", unit="batch"):
        chunk = todo[start:start + TOPICS_PER_BATCH]
        texts = answers(model, tokenizer, [p.format(topic=topics[k]) for k in chunk for p in PROMPTS], seed=chunk[0])
        for i, k in enumerate(chunk):
            (work / f"{k:04d}.json").write_text(json.dumps(
                {"topic": topics[k], "answers": texts[i * len(PROMPTS):(i + 1) * len(PROMPTS)]}))
    seen, sentences = set(), []
    for path in sorted(work.glob("*.json")):
        for text in json.loads(path.read_text())["answers"]:
            for line in text.splitlines():
                match = NUMBERED.match(line)
                sentence = cleaned(match.group(1)) if match else None
                if sentence and sentence.lower() not in seen:
                    seen.add(sentence.lower())
                    sentences.append(sentence)
    args.out.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    print(f"{len(sentences)} sentences -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
