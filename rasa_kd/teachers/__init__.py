"""Stage 1, the teacher: the offline models (`resources`, `install`), fine-tuning (`fine_tune`) and
the teacher folder every later stage reads (`folder.TeacherFolder`)."""
