#pragma once
/// MammoCL umbrella header for the CPU build: core, the CPU backend, layers, models, losses and optimizers.
/// (Evaluation lives in mammocl/eval/*.hpp, included on demand.)
/// Checkpoints (safetensors, nlohmann-json) are one include away, `mammocl/io/checkpoint.hpp`: they are
/// left out here because they add about 3 s to the compile of every file that includes the umbrella.
/// No CUDA and no DCMTK header is ever reached from here.
#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/core/shape.hpp"
#include "mammocl/core/tensor.hpp"
#include "mammocl/layers/batch_norm.hpp"
#include "mammocl/layers/conv2d.hpp"
#include "mammocl/layers/dense_block.hpp"
#include "mammocl/layers/gradient_reversal.hpp"
#include "mammocl/layers/l2_normalize.hpp"
#include "mammocl/layers/linear.hpp"
#include "mammocl/layers/mlp_projector.hpp"
#include "mammocl/layers/pooling.hpp"
#include "mammocl/layers/relu.hpp"
#include "mammocl/layers/sequential.hpp"
#include "mammocl/layers/transition.hpp"
#include "mammocl/losses/cross_entropy.hpp"
#include "mammocl/losses/domain_adversarial.hpp"
#include "mammocl/losses/mmd.hpp"
#include "mammocl/losses/supcon.hpp"
#include "mammocl/models/densenet.hpp"
#include "mammocl/optim/adam.hpp"
#include "mammocl/optim/lr_schedule.hpp"
#include "mammocl/optim/optimizer.hpp"
#include "mammocl/optim/sgd.hpp"
