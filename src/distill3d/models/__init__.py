"""Networks: ResNet (torchvision parameter names), PointNet, viewpoint teacher/student, hand-pose heads."""

from distill3d.models.pointnet import PointNetClassifier, PointNetEncoder
from distill3d.models.pose import PoseStudent, PoseTeacher, ViewpointHeads
from distill3d.models.resnet import ResNet, load_torchvision_state_dict

__all__ = [
    "PointNetClassifier",
    "PointNetEncoder",
    "PoseStudent",
    "PoseTeacher",
    "ResNet",
    "ViewpointHeads",
    "load_torchvision_state_dict",
]
