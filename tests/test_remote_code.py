"""A saved model loads with AutoModel + trust_remote_code in a process that cannot import the project."""

from __future__ import annotations

import json
import textwrap

import torch

from modeling_scl_slt import SclSltConfig, SclSltForSignTranslation
from tests._isolation import run_without_project

# Runs in a fresh interpreter: the project's packages are made unimportable first, then the
# folder is loaded the way a Hub user would, fully offline.
LOADER = textwrap.dedent(
    """
    import json, sys
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

    folder, inputs = sys.argv[1], torch.load(sys.argv[2])
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    seq2seq = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
    greedy = model.generate(**inputs, max_new_tokens=6)
    beams = seq2seq.generate(**inputs, max_new_tokens=6, num_beams=3)
    print(json.dumps({
        "config": type(config).__name__,
        "model_module": type(model).__module__,
        "model": type(model).__name__,
        "greedy": greedy.tolist(),
        "beams": beams.tolist(),
    }))
    """
)


def test_remote_code_load_in_fresh_offline_process(tmp_path) -> None:
    torch.manual_seed(0)
    model = SclSltForSignTranslation(SclSltConfig.from_preset("tiny")).eval()
    with torch.no_grad():
        model.lm_head.weight.normal_(std=1.0)
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM"}
    assert {"modeling_scl_slt.py", "configuration_scl_slt.py", "similarity.py"} <= {
        p.name for p in (tmp_path / "model").iterdir()
    }

    pixels = torch.randn(2, 14, 3, 32, 32)
    mask = torch.ones(2, 14, dtype=torch.long)
    mask[1, 9:] = 0
    inputs = {"pixel_values": pixels, "attention_mask": mask}
    torch.save(inputs, tmp_path / "inputs.pt")
    expected_greedy = model.generate(**inputs, max_new_tokens=6).tolist()
    expected_beams = model.generate(**inputs, max_new_tokens=6, num_beams=3).tolist()

    result = run_without_project(
        LOADER, str(tmp_path / "model"), str(tmp_path / "inputs.pt"), workdir=tmp_path, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["config"] == "SclSltConfig"
    assert loaded["model"] == "SclSltForSignTranslation"
    assert loaded["model_module"].startswith("transformers_modules.")
    assert loaded["greedy"] == expected_greedy
    assert loaded["beams"] == expected_beams
