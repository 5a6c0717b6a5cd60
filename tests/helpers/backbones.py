"""Tiny randomly initialised image backbones for the transfer-learning tests.

Each builder returns a KerasCV, KerasHub or `keras.applications` backbone built from
its constructor (presets cannot be downloaded in the test environment) with the
smallest configuration that keeps the architecture's stage/block layer naming, for
32x32 RGB inputs.
"""

import keras

IMAGE_SHAPE = (32, 32, 3)


def keras_cv_resnet():
    import keras_cv

    return keras_cv.models.ResNetBackbone(
        stackwise_filters=[4, 8],
        stackwise_blocks=[1, 1],
        stackwise_strides=[1, 2],
        include_rescaling=False,
        input_shape=IMAGE_SHAPE,
    )


def keras_cv_mobilenet_v3():
    import keras_cv

    return keras_cv.models.MobileNetV3Backbone(
        stackwise_expansion=[1, 4],
        stackwise_filters=[8, 8],
        stackwise_kernel_size=[3, 3],
        stackwise_stride=[2, 2],
        stackwise_se_ratio=[0.25, None],
        stackwise_activation=["relu", "hard_swish"],
        include_rescaling=False,
        input_shape=IMAGE_SHAPE,
        alpha=0.25,
    )


def keras_cv_csp_darknet():
    import keras_cv

    return keras_cv.models.CSPDarkNetBackbone(
        stackwise_channels=[8, 16],
        stackwise_depth=[1, 1],
        include_rescaling=False,
        input_shape=IMAGE_SHAPE,
    )


def keras_cv_densenet():
    import keras_cv

    return keras_cv.models.DenseNetBackbone(
        stackwise_num_repeats=[1, 1],
        include_rescaling=False,
        input_shape=IMAGE_SHAPE,
        growth_rate=4,
    )


def keras_cv_efficientnet_v2():
    import keras_cv

    return keras_cv.models.EfficientNetV2Backbone(
        include_rescaling=False,
        width_coefficient=0.25,
        depth_coefficient=0.25,
        stackwise_kernel_sizes=[3, 3],
        stackwise_num_repeats=[1, 1],
        stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16],
        stackwise_expansion_ratios=[1, 4],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25],
        stackwise_strides=[1, 2],
        stackwise_conv_types=["fused", "unfused"],
        input_shape=IMAGE_SHAPE,
    )


def keras_hub_resnet():
    import keras_hub

    return keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        image_shape=IMAGE_SHAPE,
    )


def keras_hub_densenet():
    import keras_hub

    return keras_hub.models.DenseNetBackbone(
        stackwise_num_repeats=[1, 1],
        image_shape=IMAGE_SHAPE,
        growth_rate=4,
    )


def keras_hub_mobilenet():
    import keras_hub

    return keras_hub.models.MobileNetBackbone(
        stackwise_expansion=[[40, 56], [64, 144]],
        stackwise_num_blocks=[2, 2],
        stackwise_num_filters=[[8, 8], [16, 16]],
        stackwise_kernel_size=[[3, 3], [3, 3]],
        stackwise_num_strides=[[2, 1], [2, 1]],
        stackwise_se_ratio=[[None, None], [0.25, 0.25]],
        stackwise_activation=[["relu", "relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1, 1], [1, 1]],
        output_num_filters=32,
        depthwise_filters=8,
        depthwise_stride=2,
        depthwise_residual=False,
        last_layer_filter=32,
        squeeze_and_excite=0.5,
        image_shape=IMAGE_SHAPE,
        input_num_filters=8,
    )


def keras_applications_mobilenet_v3_small():
    return keras.applications.MobileNetV3Small(
        input_shape=IMAGE_SHAPE,
        alpha=0.75,
        minimalistic=True,
        include_top=False,
        weights=None,
        include_preprocessing=False,
    )


BUILDERS = {
    "keras_cv.ResNetBackbone": keras_cv_resnet,
    "keras_cv.MobileNetV3Backbone": keras_cv_mobilenet_v3,
    "keras_cv.CSPDarkNetBackbone": keras_cv_csp_darknet,
    "keras_cv.DenseNetBackbone": keras_cv_densenet,
    "keras_cv.EfficientNetV2Backbone": keras_cv_efficientnet_v2,
    "keras_hub.ResNetBackbone": keras_hub_resnet,
    "keras_hub.DenseNetBackbone": keras_hub_densenet,
    "keras_hub.MobileNetBackbone": keras_hub_mobilenet,
    "keras.applications.MobileNetV3Small": keras_applications_mobilenet_v3_small,
}
