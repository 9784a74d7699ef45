#pragma once
/// Umbrella for MammoCL's data layer without DCMTK: images and their PGM / PNG files, the VOI LUT
/// domains, breast segmentation, the dataset readers (mini-MIAS, CBIS-DDSM CSVs, INbreast), the phantom,
/// patch sampling, domain datasets and manifests, augmentations and the prefetching loader.
/// DICOM (DCMTK) is separate: #include <mammocl/data/dicom.hpp> and link mammocl::dicom.
/// Kept out of mammocl.hpp so that programs that only train pay no compile time for it.
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/augment.hpp"
#include "mammocl/data/batch.hpp"
#include "mammocl/data/cbis_ddsm.hpp"
#include "mammocl/data/domains.hpp"
#include "mammocl/data/image.hpp"
#include "mammocl/data/image_io.hpp"
#include "mammocl/data/inbreast.hpp"
#include "mammocl/data/loader.hpp"
#include "mammocl/data/mask_ops.hpp"
#include "mammocl/data/mini_mias.hpp"
#include "mammocl/data/patches.hpp"
#include "mammocl/data/phantom.hpp"
#include "mammocl/data/resize.hpp"
#include "mammocl/data/segmentation.hpp"
#include "mammocl/data/synthetic.hpp"
#include "mammocl/data/synthetic_domains.hpp"
#include "mammocl/data/voi_lut.hpp"
