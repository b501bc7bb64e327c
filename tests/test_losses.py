import pytest
import torch

from deeppose.heads.losses import l1_loss, l2_loss, masked_mean, smooth_l1_loss


def test_eq4_l2_and_l1_per_joint():
    pred = torch.tensor([[[0.1, 0.2], [0.0, 0.0]]])
    target = torch.tensor([[[0.4, -0.2], [0.0, 0.5]]])
    torch.testing.assert_close(l2_loss(pred, target), torch.tensor([[0.09 + 0.16, 0.25]]))
    torch.testing.assert_close(l1_loss(pred, target), torch.tensor([[0.3 + 0.4, 0.5]]))
    with pytest.raises(ValueError, match=r"\(B, K, 2\)"):
        l2_loss(pred, target[..., :1])


def test_smooth_l1_is_quadratic_below_beta_and_linear_above():
    pred = torch.zeros(1, 2, 2)
    target = torch.tensor([[[0.004, 0.0], [0.3, -0.2]]])
    beta = 0.01
    torch.testing.assert_close(smooth_l1_loss(pred, target, beta),
                               torch.tensor([[0.5 * 0.004 ** 2 / beta, (0.3 - beta / 2) + (0.2 - beta / 2)]]))


def test_masked_mean_omits_unlabelled_joints():
    losses = torch.tensor([[1.0, 100.0], [3.0, 5.0]], requires_grad=True)
    mask = torch.tensor([[True, False], [True, True]])
    out = masked_mean(losses, mask)
    assert out.item() == pytest.approx(3.0)
    out.backward()
    assert losses.grad[0, 1] == 0
    assert masked_mean(losses, torch.zeros_like(mask)).item() == 0.0
