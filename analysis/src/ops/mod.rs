//! 3D operations on candle tensors (`N × C × D × H × W`, f32, CPU), all
//! differentiable. candle 0.11 has no 3D convolution, pooling or
//! upsampling; these fill the gap.

mod compose;
mod conv3d;
mod fused;
pub mod kernels;
mod pool;
mod transpose;

pub use compose::{
    add_channel_bias, batch_norm3d, batch_stats, conv1x1x1, conv_transpose3d_2, instance_norm3d,
    upsample_nearest_2, upsample_trilinear_2,
};
pub use conv3d::{conv3d, conv3d_bias};
pub use fused::{cat_channels, instance_norm_act, scale_by_map, upsample_trilinear_2_with};
pub use pool::max_pool3d_2;
pub use transpose::conv_transpose3d_2_bias;
