import pytest
import torch

from model.pyramid import LaplacianPyramid, Resample


def test_down_then_up_reconstructs_at_initialisation():
    pyr = LaplacianPyramid(8, (4, 2))
    x = torch.randn(3, 8, 32, 32)
    levels, details = pyr.decompose(x)
    assert [lv.shape[-1] for lv in levels] == [8, 4]
    assert [d.shape[-1] for d in details] == [32, 8]
    # at init the coarse levels are plain area averages, the upsampler bilinear inside the tile
    torch.testing.assert_close(levels[0], torch.nn.functional.avg_pool2d(x, 4))
    up = torch.nn.functional.interpolate(levels[0], scale_factor=4, mode="bilinear")
    torch.testing.assert_close(pyr.up[0].fixed(levels[0])[..., 2:-2, 2:-2], up[..., 2:-2, 2:-2])
    torch.testing.assert_close(pyr.reconstruct(levels[-1], details), x, atol=1e-5, rtol=0)


def test_learned_residuals_are_what_the_reconstruction_depends_on():
    pyr = LaplacianPyramid(8, (4, 2))
    x = torch.randn(2, 8, 32, 32)
    levels, details = pyr.decompose(x)
    with torch.no_grad():
        pyr.up[0].residual.normal_()  # as if trained
    assert (pyr.reconstruct(levels[-1], details) - x).abs().max() > 1e-2


def test_fused_reconstruction_with_messages_equals_the_explicit_one():
    pyr = LaplacianPyramid(8, (4, 2))
    with torch.no_grad():  # trained-looking resamplers
        for r in [*pyr.up, *pyr.down]:
            r.residual.normal_(std=0.1)
    x = torch.randn(2, 8, 32, 32)
    levels, details = pyr.decompose(x)
    m8, m16 = torch.randn_like(levels[0]), torch.randn_like(levels[1])
    explicit = pyr.reconstruct(levels[1] + m16, [details[0], details[1] + m8])
    torch.testing.assert_close(pyr.reconstruct_with(x, levels, [m8, m16]), explicit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pyr.reconstruct_with(x, levels, [0 * m8, 0 * m16]), pyr.reconstruct(levels[1], details))


def test_resample_moves_between_devices_and_dtypes():
    # nn.Module._apply backs .to()/.float()/.double(): a module method of that name breaks them
    import torch

    from model.pyramid import Resample

    layer = Resample(4, 2, "down").to(torch.float64)
    assert layer.residual.dtype == torch.float64
    assert layer(torch.zeros(1, 4, 8, 8, dtype=torch.float64)).shape == (1, 4, 4, 4)


def test_learned_minus_fixed_equals_one_grouped_transposed_convolution():
    # the formula as a single grouped convolution over interleaved inputs (the first implementation)
    import torch.nn.functional as F

    from model.pyramid import Resample

    up = Resample(6, 4, "up")
    with torch.no_grad():
        up.residual.normal_(std=0.1)
    a, b = torch.randn(2, 6, 5, 7), torch.randn(2, 6, 5, 7)
    weight = torch.stack([up.fixed_weight + up.residual, -up.fixed_weight], dim=1).flatten(0, 1)
    x = torch.stack([a, b], dim=2).flatten(1, 2)  # channels a0, b0, a1, b1, ...
    expected = F.conv_transpose2d(x, weight, stride=4, padding=2, groups=6)
    torch.testing.assert_close(up.learned_minus_fixed(a, b), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("factor, size", [(4, (16, 12)), (2, (5, 7)), (6, (3, 4))])
def test_phase_form_adds_what_the_transposed_convolutions_give(factor, size):
    """add_learned_minus_fixed_ (one grouped 3x3 convolution over the f x f phases, added
    through a strided view) == out + up(a) - up.fixed(b) by transposed convolutions."""
    g = torch.Generator().manual_seed(3)
    up = Resample(6, factor, "up")
    with torch.no_grad():
        up.residual.copy_(torch.randn(up.residual.shape, generator=g) * 0.3)
        a, b = torch.randn(2, 6, *size, generator=g), torch.randn(2, 6, *size, generator=g)
        out = torch.randn(2, 6, factor * size[0], factor * size[1], generator=g)
        expected = out + up(a) - up.fixed(b)
        for layout in (torch.channels_last, torch.contiguous_format):  # the latter: plain fallback
            got = out.contiguous(memory_format=layout)
            up.add_learned_minus_fixed_(got, a, b)
            torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
