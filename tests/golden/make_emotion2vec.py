"""Regenerate ``emotion2vec.npz``: FunASR's reference ``Emotion2vec`` on seeded random weights.

The reference is ``funasr.models.emotion2vec.model.Emotion2vec`` (funasr 1.4.16, the class
FunASR's ``AutoModel`` builds for ``emotion2vec/emotion2vec_*``), built from a ``model_conf``
like the checkpoints' ``config.yaml`` (FunASR's ``template.yaml``) but tiny: two variants
``TINY`` with the real layer types and code path (conv front end with the official kernels and
strides, grouped positional convolutions, 10 extra tokens, learned-scale ALiBi with 12 heads,
a non-power of 2, and with 16 heads, post-LN blocks, decoder and classifier head present).
Weights: ``embedprobe.extractors.nets.common.seeded_state`` of our ``Data2Vec2Audio`` (drawn by
key name), loaded into the reference, whose extra pre-training keys (decoder, ``proj``) keep
their init. Outputs recorded per variant: every hidden state (hooks on the prenet norm and the
blocks), ``inference(granularity="frame"/"utterance")`` (normalisation, features, mean), and
the reference's full ``state_dict`` key names and shapes; for the three official full-size
configurations only the key names and shapes (built on the meta device). Run in a throwaway venv:

    python3.11 -m venv /tmp/e2vref
    /tmp/e2vref/bin/pip install torch==2.13.0 "numpy<2.5" omegaconf pyyaml
    /tmp/e2vref/bin/pip install --no-deps funasr==1.4.16
    /tmp/e2vref/bin/python tests/golden/make_emotion2vec.py
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]

import _reference  # noqa: E402
from signals import speechlike  # noqa: E402

from embedprobe.extractors.emotion2vec import FULL, TINY, config_of  # noqa: E402
from embedprobe.extractors.nets.common import seeded_state  # noqa: E402
from embedprobe.extractors.nets.data2vec2 import Data2Vec2Audio, Data2Vec2Config  # noqa: E402

SEED = 2312  # arXiv 2312.15185
SR = 16000
TEMPLATE = {  # FunASR's emotion2vec template.yaml, the keys the model class reads
    "loss_beta": 0.0, "loss_scale": None, "depth": 8, "start_drop_path_rate": 0.0,
    "end_drop_path_rate": 0.0, "num_heads": 12, "norm_eps": 1e-05, "norm_affine": True,
    "encoder_dropout": 0.1, "post_mlp_drop": 0.1, "attention_dropout": 0.1,
    "activation_dropout": 0.0, "dropout_input": 0.0, "layerdrop": 0.05, "embed_dim": 768,
    "mlp_ratio": 4.0, "layer_norm_first": False, "average_top_k_layers": 8,
    "end_of_block_targets": False, "clone_batch": 8, "normalize": True,
    "modalities": {"audio": {
        "type": "AUDIO", "prenet_depth": 4, "prenet_layerdrop": 0.05, "prenet_dropout": 0.1,
        "start_drop_path_rate": 0.0, "end_drop_path_rate": 0.0, "num_extra_tokens": 10,
        "init_extra_token_zero": True, "mask_noise_std": 0.01, "mask_prob_min": None,
        "mask_prob": 0.5, "inverse_mask": False, "mask_prob_adjust": 0.05, "keep_masked_pct": 0.0,
        "mask_length": 5, "add_masks": False, "remove_masks": False, "mask_dropout": 0.0,
        "encoder_zero_mask": True, "mask_channel_prob": 0.0, "mask_channel_length": 64,
        "ema_local_encoder": False, "local_grad_mult": 1.0, "use_alibi_encoder": True,
        "alibi_scale": 1.0, "learned_alibi": False, "alibi_max_pos": None,
        "learned_alibi_scale": True, "learned_alibi_scale_per_head": True,
        "learned_alibi_scale_per_layer": False, "num_alibi_heads": 12, "model_depth": 8,
        "decoder": {"decoder_dim": 384, "decoder_groups": 16, "decoder_kernel": 7,
                    "decoder_layers": 4, "input_dropout": 0.1, "add_positions_masked": False,
                    "add_positions_all": False, "decoder_residual": True,
                    "projection_layers": 1, "projection_ratio": 2.0},
        "extractor_mode": "layer_norm",
        "feature_encoder_spec": "[(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512,2,2)] + [(512,2,2)]",
        "conv_pos_width": 95, "conv_pos_groups": 16, "conv_pos_depth": 5, "conv_pos_pre_ln": False,
    }},
}


def model_conf(cfg: Data2Vec2Config, decoder_dim: int) -> dict:
    conf = copy.deepcopy(TEMPLATE)
    conf.update(embed_dim=cfg.embed_dim, num_heads=cfg.heads, depth=cfg.depth, mlp_ratio=cfg.mlp_ratio)
    audio = conf["modalities"]["audio"]
    audio.update(prenet_depth=cfg.prenet_depth, num_alibi_heads=cfg.heads, model_depth=cfg.depth,
                 num_extra_tokens=cfg.extra_tokens, conv_pos_width=cfg.conv_pos_width,
                 conv_pos_groups=cfg.conv_pos_groups, conv_pos_depth=cfg.conv_pos_depth,
                 feature_encoder_spec=repr([tuple(c) for c in cfg.conv]))
    audio["decoder"]["decoder_dim"] = decoder_dim
    return conf


def reference(model, cfg: Data2Vec2Config, decoder_dim: int, classes: int):
    return model.Emotion2vec(model_conf=model_conf(cfg, decoder_dim), vocab_size=classes)


def keys_json(net: torch.nn.Module) -> np.ndarray:
    return np.array(json.dumps({k: list(v.shape) for k, v in net.state_dict().items()}))


def main() -> None:
    torch.set_num_threads(1)
    model = _reference.funasr_emotion2vec()
    out: dict[str, np.ndarray] = {"seed": np.array(SEED)}
    for name, arch in TINY.items():
        cfg = Data2Vec2Config(**{**Data2Vec2Config().__dict__, **arch})
        ours = Data2Vec2Audio(cfg)
        ref = reference(model, cfg, decoder_dim=16, classes=9).eval()
        state = seeded_state(ours, SEED)
        missing, unexpected = ref.load_state_dict(state, strict=False)
        assert not unexpected and all(k.startswith(("modality_encoders.AUDIO.decoder.", "proj."))
                                      for k in missing), (missing, unexpected)
        grab: list[torch.Tensor] = []
        enc = ref.modality_encoders["AUDIO"].context_encoder
        enc.norm.register_forward_hook(lambda m, i, o, grab=grab: grab.append(o))
        for blk in (*enc.blocks, *ref.blocks):
            blk.register_forward_hook(lambda m, i, o, grab=grab: grab.append(o[0]))
        wav = speechlike(1.3, SR, seed=11)
        src = torch.from_numpy(wav)
        with torch.no_grad():
            frames = ref.inference([src], key=["a"], device="cpu", granularity="frame")[0][0]["feats"]
            utt = ref.inference([src], key=["a"], device="cpu", granularity="utterance")[0][0]["feats"]
        e = cfg.extra_tokens
        states = grab[: 1 + cfg.n_blocks]
        out[f"{name}_wav"] = wav
        out[f"{name}_states"] = torch.stack([s[0, e:] for s in states]).numpy().astype(np.float32)
        out[f"{name}_frames"] = np.asarray(frames, np.float32)
        out[f"{name}_utterance"] = np.asarray(utt, np.float32)
        out[f"{name}_keys"] = keys_json(ref)
    for name, (spec, classes) in FULL.items():  # the official configurations: names and shapes only
        cfg = config_of(spec)
        with torch.device("meta"):
            ref = reference(model, cfg, decoder_dim=768 if cfg.embed_dim == 1024 else 384, classes=classes)
        out[f"{name}_keys"] = keys_json(ref)
    np.savez_compressed(HERE / "emotion2vec.npz", **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
