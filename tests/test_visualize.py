import numpy as np

from deeppose.skeleton import LSP14
from deeppose.visualize import contact_sheet, draw_pose, limb_colours, plot_pdj


def test_draw_pose_paints_limbs_in_their_colours():
    joints = np.zeros((14, 2))
    joints[8], joints[7] = (20.0, 20.0), (20.0, 80.0)  # right upper arm, vertical
    labelled = np.zeros(14, bool)
    labelled[[8, 7]] = True
    image = np.zeros((100, 100, 3), np.uint8)
    out = draw_pose(image, joints, labelled, LSP14)
    assert tuple(out[50, 20]) == limb_colours(LSP14)[0]
    assert out[50, 60].sum() == 0 and image.sum() == 0, "draws on a copy, only along the limb"
    labelled[7] = False
    assert draw_pose(image, joints, labelled, LSP14)[50, 20].sum() == 0, "no limb without both endpoints"


def test_contact_sheet_and_pdj_plot(tmp_path):
    sheet = contact_sheet([np.full((30, 60, 3), 200, np.uint8)] * 3, columns=2, tile_size=40)
    assert sheet.shape == (80, 80, 3) and sheet[20, 20].tolist() == [200, 200, 200]
    alphas = np.linspace(0, 0.5, 11)
    path = plot_pdj(alphas, {"wrist": alphas * 2}, tmp_path / "pdj.png")
    assert path.read_bytes()[:4] == b"\x89PNG"
