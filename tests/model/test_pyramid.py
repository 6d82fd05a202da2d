import torch

from model.pyramid import LaplacianPyramid


def test_down_then_up_reconstructs_at_initialisation():
    pyr = LaplacianPyramid(8, (4, 2))
    x = torch.randn(3, 8, 32, 32)
    levels, details = pyr.decompose(x)
    assert [lv.shape[-1] for lv in levels] == [8, 4]
    assert [d.shape[-1] for d in details] == [32, 8]
    # at init the coarse levels are plain area averages
    torch.testing.assert_close(levels[0], torch.nn.functional.avg_pool2d(x, 4))
    torch.testing.assert_close(pyr.reconstruct(levels[-1], details), x, atol=1e-5, rtol=0)


def test_learned_residuals_are_what_the_reconstruction_depends_on():
    pyr = LaplacianPyramid(8, (4, 2))
    x = torch.randn(2, 8, 32, 32)
    levels, details = pyr.decompose(x)
    with torch.no_grad():
        pyr.up[0].residual.weight.normal_()  # as if trained
    assert (pyr.reconstruct(levels[-1], details) - x).abs().max() > 1e-2
