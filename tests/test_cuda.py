"""GPU checks (issue 24): bf16 autocast, the SDPA attention path, fused AdamW, torch.compile, `solve` on CUDA
against the CPU, and DDP over NCCL.

    python -m pytest -m cuda tests -q -n 0          # benchmarks/gpu_check.sh runs this first

Every test here carries the `cuda` marker; the whole module is skipped, with the reason printed by
`pytest -rs`, where torch sees no CUDA device. Models are the tiny test configs (4x4 grids), except
the SDPA test, which runs the Sudoku-Att preset's attention shapes (head_dim 64, where the fused
flash / memory-efficient kernels apply).
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.cuda

if not torch.cuda.is_available():
    pytest.skip("no CUDA device (torch.cuda.is_available() is False): the GPU checks run on a machine with one, "
                "e.g. `bash benchmarks/gpu_check.sh`", allow_module_level=True)

from modeling_trm import TRMConfig, TRMForGridReasoning  # noqa: E402
from tiny_models import random_batch, tiny_config  # noqa: E402

CUDA = torch.device("cuda")


def _model(seed: int = 0, **overrides) -> TRMForGridReasoning:
    """A tiny model whose halting head reads y (at init q_head is zero: q_halt would be -5 everywhere)."""
    torch.manual_seed(seed)
    model = TRMForGridReasoning(tiny_config(hidden_size=64, **overrides))
    with torch.no_grad():
        model.q_head.weight.normal_(0, 0.3)
    return model


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach().float().cpu(), expected.detach().float().cpu()
    return float((actual - expected).norm() / expected.norm().clamp_min(1e-12))


@pytest.mark.parametrize("mixer", ["mlp_t", "attention"])
def test_bf16_autocast_forward_backward(mixer: str) -> None:
    model = _model(mixer=mixer, pos_encodings="none" if mixer == "mlp_t" else "rope").to(CUDA).train()
    ids, labels = random_batch(8).to(CUDA), random_batch(8, seed=1).to(CUDA)
    generator = torch.Generator(device=CUDA).manual_seed(0)
    reference = model(ids, labels=labels, generator=generator)
    reference.loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    generator.manual_seed(0)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        fast = model(ids, labels=labels, generator=generator)
    fast.loss.backward()
    assert torch.isfinite(fast.loss) and fast.logits.device.type == "cuda"
    assert _relative_error(fast.logits, reference.logits) < 0.05
    for name, grad in grads.items():
        new = dict(model.named_parameters())[name].grad
        assert new is not None and torch.isfinite(new).all(), name
        assert _relative_error(new, grad) < 0.15, name


def test_sdpa_attention_path_on_cuda(monkeypatch) -> None:
    """The attention mixer calls `F.scaled_dot_product_attention`; with only the fused kernels (flash,
    memory-efficient) allowed it runs forward and backward in bf16, and agrees with the math kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    calls = []
    original = torch.nn.functional.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", counting)
    config = TRMConfig.from_preset("sudoku-att", H_cycles=1, L_cycles=1)
    torch.manual_seed(0)
    model = TRMForGridReasoning(config).to(CUDA).train()
    ids = torch.randint(1, config.vocab_size, (4, config.seq_len), device=CUDA)
    labels = torch.randint(2, config.vocab_size, (4, config.seq_len), device=CUDA)
    results = {}
    for name, backends in (("fused", [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]),
                           ("math", [SDPBackend.MATH])):
        model.zero_grad()
        with sdpa_kernel(backends), torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(ids, labels=labels, generator=torch.Generator(device=CUDA).manual_seed(0))
            out.loss.backward()
        grad = model.lm_head.weight.grad
        assert torch.isfinite(out.loss) and grad is not None and torch.isfinite(grad).all(), name
        results[name] = (out.logits.detach(), grad.clone())
    assert calls and calls[0][-1] == config.head_dim  # (B, heads, L, head_dim): the model went through SDPA
    assert _relative_error(results["fused"][0], results["math"][0]) < 0.03
    assert _relative_error(results["fused"][1], results["math"][1]) < 0.1


def test_fused_adamw_step_matches_the_unfused_one() -> None:
    model = _model().to(CUDA).train()
    reference = copy.deepcopy(model)
    initial = {name: p.detach().clone() for name, p in model.named_parameters()}
    fused = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, fused=True)
    plain = torch.optim.AdamW(reference.parameters(), lr=1e-3, weight_decay=0.1, foreach=False)
    assert fused.defaults["fused"] is True
    ids, labels = random_batch(8).to(CUDA), random_batch(8, seed=1).to(CUDA)
    for step in range(3):
        for net, optimizer in ((model, fused), (reference, plain)):
            out = net(ids, labels=labels, generator=torch.Generator(device=CUDA).manual_seed(step))
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    assert any(not torch.equal(p, initial[name]) for name, p in model.named_parameters())  # it did update


def test_torch_compile_of_the_forward_on_cuda() -> None:
    model = _model().to(CUDA)
    compiled = torch.compile(model)
    ids, labels = random_batch(8).to(CUDA), random_batch(8, seed=1).to(CUDA)
    model.eval()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        eager = model(ids).logits
        graph = compiled(ids).logits
    assert _relative_error(graph, eager) < 0.02
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        eager_loss = model(ids, labels=labels, generator=torch.Generator(device=CUDA).manual_seed(0)).loss
        out = compiled(ids, labels=labels, generator=torch.Generator(device=CUDA).manual_seed(0))
    out.loss.backward()
    assert torch.isfinite(out.loss) and abs(float(out.loss) - float(eager_loss)) < 0.02 * abs(float(eager_loss)) + 1e-3
    assert model.lm_head.weight.grad is not None and torch.isfinite(model.lm_head.weight.grad).all()


def test_solve_on_cuda_equals_cpu_within_bf16_tolerance() -> None:
    cpu_model = _model(seed=1).eval()
    gpu_model = copy.deepcopy(cpu_model).to(CUDA)
    ids = random_batch(64, seed=2)
    expected = cpu_model.solve(ids, halting="max", max_steps=4)
    expected_logits = cpu_model(ids).logits
    fp32 = gpu_model.solve(ids.to(CUDA), halting="max", max_steps=4)
    assert fp32.predictions.device.type == "cuda"
    assert (fp32.predictions.cpu() == expected.predictions).float().mean() >= 0.99
    torch.testing.assert_close(fp32.q_halt_logits.cpu(), expected.q_halt_logits, rtol=1e-3, atol=1e-3)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        bf16 = gpu_model.solve(ids.to(CUDA), halting="max", max_steps=4)
        bf16_logits = gpu_model(ids.to(CUDA)).logits
    assert (bf16.predictions.cpu() == expected.predictions).float().mean() >= 0.9  # mostly equal
    assert _relative_error(bf16_logits, expected_logits) < 0.05  # logits close
    torch.testing.assert_close(bf16.q_halt_logits.float().cpu(), expected.q_halt_logits, rtol=0.1, atol=0.1)
    # the slot-refill ACT path that `trm solve` and `trm eval --halting act` use
    act_cpu = cpu_model.solve(ids, halting="act", slots=16)
    act_gpu = gpu_model.solve(ids.to(CUDA), halting="act", slots=16)
    assert (act_gpu.steps.cpu() == act_cpu.steps).float().mean() >= 0.95
    assert (act_gpu.predictions.cpu() == act_cpu.predictions).float().mean() >= 0.95


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="DDP over NCCL needs at least 2 GPUs; "
                    f"torch sees {torch.cuda.device_count()}")
def test_ddp_with_nccl_keeps_the_replicas_equal(tmp_path: Path) -> None:
    worker = Path(__file__).with_name("cuda_ddp_worker.py")
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", env["MASTER_PORT"], str(worker), str(tmp_path)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(2)]
    assert [r["backend"] for r in ranks] == ["nccl", "nccl"] and ranks[0]["losses"] != ranks[1]["losses"]
    for name, tensor in ranks[0]["weights"].items():  # different data per rank, one averaged update
        torch.testing.assert_close(tensor, ranks[1]["weights"][name], rtol=0, atol=0, msg=name)
    assert any(not torch.equal(tensor, ranks[0]["initial"][name]) for name, tensor in ranks[0]["weights"].items())
