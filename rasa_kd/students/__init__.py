"""rasa-kd students: BiLSTM and small-BERT, distillation and export, and `load`.

    from rasa_kd.students import load
    student = load("build/student")            # PyTorch; load(path, runtime="auto") runs the deployed ONNX
    student.labels                             # label names, output order
    student.predict(["hi there"])              # probabilities [n, n_labels]
    student.encode(["hi there"])               # sentence vectors [n, d]
    vectors, offsets = student.encode_tokens("hi there")   # [n_tokens, d], [(start, end), ...]

The package format is documented in `rasa_kd.formats.student_package`.
"""


def load(path, runtime: str = "pytorch", threads: int = 0, **deprecated):
    """Load a student package; see `rasa_kd.students.runtime.load` (runtime="auto" runs
    what the package recommends: int8 ONNX after `rasa-kd export` when it held accuracy)."""
    from rasa_kd.students.runtime import load as load_student

    return load_student(path, runtime=runtime, threads=threads, **deprecated)


__all__ = ["load"]
