"""A VAE's round trip (encode to the posterior mode, decode), the ceiling every generated frame is judged
against, the clip tensor layout both directions use, and the precision a CPU runs a VAE at."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from functools import partial

import numpy as np
import torch


def video_tensor(clips: list[np.ndarray], device: torch.device | str = "cpu") -> torch.Tensor:
    """(F, H, W, 3) uint8 clips -> (B, 3, F, H, W) float in [-1, 1] on `device`."""
    video = torch.from_numpy(np.stack(clips)).to(device).permute(0, 4, 1, 2, 3).float()
    return video / 127.5 - 1.0


def cpu_autocast(vae) -> torch.autocast:
    """bfloat16 autocast for a float32 VAE on a CPU with native bfloat16 convolutions, else a no-op.

    A one-clip float32 3D convolution over few frames fails PyTorch's oneDNN heuristic (batch 1, and
    batch x channels x frames x height <= 20480) and runs on its reference kernel: 62 % of a demo-model
    decode. In bfloat16 oneDNN always runs: the demo decode takes 1.0 s instead of 5.6 s, and its frames move
    by 0.25 grey levels on average (0.0019 in [-1, 1]).
    """
    enabled = _float32_on_cpu(vae) and native_bfloat16()
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def cpu_vae(vae, call: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor):
    """call(batch) on a frozen `vae`, at the precision and on the kernels this CPU runs it fastest: under
    `cpu_autocast` where the CPU has native bfloat16, else a float32 VAE's 3D convolutions go straight to
    oneDNN (`onednn_convolutions`; a 17-frame 160x96 clip through the demo VAE's decoder, one thread: 3.7 s on
    the reference kernel, 1.0 s). Gradients reach the inputs (guide fitting), never the VAE's weights."""
    onednn = _float32_on_cpu(vae) and not native_bfloat16() and torch.backends.mkldnn.is_available()
    with _frozen(vae), onednn_convolutions(vae) if onednn else cpu_autocast(vae):
        return call(batch)


@contextmanager
def _frozen(module: torch.nn.Module):
    trainable = [parameter for parameter in module.parameters() if parameter.requires_grad]
    for parameter in trainable:
        parameter.requires_grad_(False)
    try:
        yield
    finally:
        for parameter in trainable:
            parameter.requires_grad_(True)


@contextmanager
def onednn_convolutions(model: torch.nn.Module):
    """Within: every `Conv3d` of `model` with zero padding runs on oneDNN whatever the heuristic says, its
    gradient to the input too (a convolution with the flipped kernel), and treats its weights as frozen."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv3d) and m.padding_mode == "zeros"]
    convs = [m for m in convs if not isinstance(m.padding, str)]
    for conv in convs:
        conv._conv_forward = partial(_onednn_conv3d, conv)  # what nn.Conv3d.forward calls
    try:
        yield
    finally:
        for conv in convs:
            conv.__dict__.pop("_conv_forward", None)


def _onednn_conv3d(conv: torch.nn.Conv3d, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None):
    if x.device.type != "cpu" or x.dtype != torch.float32:
        return type(conv)._conv_forward(conv, x, weight, bias)
    bias = None if bias is None else bias.detach()
    layout = (conv.padding, conv.stride, conv.dilation, conv.groups)
    return _OneDnnConv3d.apply(x, weight.detach(), bias, *layout)


class _OneDnnConv3d(torch.autograd.Function):
    """A 3D convolution on oneDNN, differentiable in its input only."""

    @staticmethod
    def forward(ctx, x, weight, bias, padding, stride, dilation, groups):
        ctx.save_for_backward(x, weight)
        ctx.conv = (list(padding), list(stride), list(dilation), groups)
        return torch.mkldnn_convolution(x, weight, bias, padding, stride, dilation, groups)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        padding, stride, dilation, groups = ctx.conv
        grad = grad.contiguous()
        kernel = weight.shape[2:]
        unit = stride == dilation == [1, 1, 1] and groups == 1
        if unit and all(p < k for p, k in zip(padding, kernel, strict=True)):
            # the input's gradient of a stride-1 convolution: the output's gradient convolved with the kernel
            # flipped in space and time, its in and out channels swapped, padded by kernel - 1 - padding
            flipped = weight.flip(2, 3, 4).transpose(0, 1).contiguous()
            back = [k - 1 - p for p, k in zip(padding, kernel, strict=True)]
            grad_x = torch.mkldnn_convolution(grad, flipped, None, back, [1, 1, 1], [1, 1, 1], 1)
        else:
            transposed, output_padding, wanted = False, [0, 0, 0], [True, False, False]
            layout = (stride, padding, dilation, transposed, output_padding, groups)
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, *layout, wanted)[0]
        return grad_x, None, None, None, None, None, None


def native_bfloat16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN's check: AVX-512 BF16 or AMX)."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _float32_on_cpu(vae) -> bool:
    return vae.device.type == "cpu" and vae.dtype == torch.float32


@torch.no_grad()
def reconstruct(vae, clip: np.ndarray) -> np.ndarray:
    """`clip` (F, H, W, 3) uint8 encoded (posterior mode) and decoded by a diffusers video VAE, at the
    precision sampling uses (`cpu_vae`)."""
    video = video_tensor([clip], vae.device).to(vae.dtype)
    latents = cpu_vae(vae, lambda v: vae.encode(v).latent_dist.mode(), video)
    return video_frames(cpu_vae(vae, lambda z: vae.decode(z).sample, latents)[0])


def video_frames(video: torch.Tensor) -> np.ndarray:
    """A decoded video (3, F, H, W) in [-1, 1] -> (F, H, W, 3) uint8: `video_tensor`'s inverse."""
    video = ((video.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return video.permute(1, 2, 3, 0).cpu().numpy()


def uint8_frames(video: np.ndarray) -> np.ndarray:
    """One video of a pipeline's "np" output, (F, H, W, 3) float in [0, 1] -> (F, H, W, 3) uint8."""
    return (np.asarray(video) * 255).round().clip(0, 255).astype(np.uint8)
