"""The two synthetic corpora the small bench configs of these tests share (TOML text)."""

CORPORA_AB = """
[corpora.a]
synthetic = "emodb"
n_speakers = 4
clips_per_class = 3
seed = 1
[corpora.b]
synthetic = "iemocap"
n_speakers = 4
clips_per_class = 3
seed = 2
"""
