#!/usr/bin/python3
"""Converts a PyTorch state dict (.pth), such as torchvision's ImageNet DenseNet-121 weights
(densenet121-a639ec97.pth), into a safetensors file that mammocl::io::load_state reads.

The output holds every floating tensor as F32 and every `num_batches_tracked` counter as an I64 scalar,
with the metadata {"format": "pt", "source": <input file name>, "sha256": <SHA-256 of the input file>}.
It is also a valid safetensors file for Python (`safetensors.torch.load_file`).

Options:
  --rename-legacy   write today's key names (`...denselayer1.norm.1.weight` -> `...denselayer1.norm1.weight`,
                    the renaming torchvision's densenet._load_state_dict applies) and add the
                    `num_batches_tracked` counters (0) that pre-1.0 files lack, so that the result loads with
                    default (strict) options. Without it, keys are kept and C++ loads the file with
                    `load_options{.torchvision_legacy = true}`.
  --in-channels 1   adapt the first convolution to grey input by summing `features.conv0.weight` over its
                    three RGB input channels. A grey image x through the summed filter gives exactly what the
                    RGB network gives for the image (x, x, x), so the ImageNet features carry over unchanged
                    (the usual adaptation; it assumes the same intensity normalisation on every channel).
  --drop-classifier leave out `classifier.*` (the 1000-class ImageNet head); load with
                    `exclude_prefixes = {"classifier."}` and a freshly initialised head.

Needs torch (Debian's /usr/bin/python3 has it); no network access, nothing is downloaded. The safetensors
file is written by this script (8-byte little-endian header length, JSON header padded with spaces to a
multiple of 8 bytes, raw little-endian data), atomically (temporary file, then rename).

Usage:
    /usr/bin/python3 scripts/convert_torchvision_weights.py densenet121-a639ec97.pth densenet121.safetensors
    /usr/bin/python3 scripts/convert_torchvision_weights.py --rename-legacy --in-channels 1 --drop-classifier \\
        densenet121-a639ec97.pth densenet121_grey_features.safetensors
"""
import argparse
import collections
import hashlib
import json
import os
import re
import struct
import sys
import tempfile

# torchvision's legacy DenseNet key pattern (same groups as torchvision.models.densenet._load_state_dict).
LEGACY_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$")
COUNTER_SUFFIX = "num_batches_tracked"
MAX_RANK = 4  # MammoCL tensors have rank 4 at most
CONV0 = "features.conv0.weight"


class ConversionError(Exception):
    """An input the converter cannot turn into a MammoCL checkpoint; the message says what and where."""


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_state_dict(path, trust_pickle):
    """The state dict in `path`: the file's top-level mapping, or its 'state_dict' / 'model' entry."""
    import torch

    if not os.path.exists(path):
        raise ConversionError(f"input file '{path}' does not exist")
    if not os.path.isfile(path):
        raise ConversionError(f"input '{path}' is not a regular file")
    with open(path, "rb") as f:
        magic = f.read(4)
    # torch.save writes a zip archive (torch >= 1.6) or a pickle stream (protocol 2+, first byte 0x80)
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise ConversionError(f"'{path}' is not a PyTorch file (neither a zip archive nor a pickle stream;"
                              f" it starts with {magic!r})")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as e:  # torch raises many types (UnpicklingError, RuntimeError, EOFError, ...)
        hint = ("" if trust_pickle else
                " (files holding Python objects other than tensors and containers need --trust-pickle, which runs"
                " the file's pickle code: use it only for files you trust)")
        raise ConversionError(f"cannot read '{path}' as a PyTorch file: {type(e).__name__}: {e}{hint}") from None
    where = "the file"
    for wrapper in ("state_dict", "model"):
        if isinstance(obj, dict) and wrapper in obj and isinstance(obj[wrapper], dict):
            obj, where = obj[wrapper], f"entry '{wrapper}'"
            break
    if not isinstance(obj, dict):
        raise ConversionError(f"'{path}' holds a {type(obj).__name__}, not a state dict (a mapping of names to"
                              " tensors, possibly under a 'state_dict' or 'model' key)")
    if not obj:
        raise ConversionError(f"the state dict in {where} of '{path}' is empty")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise ConversionError(f"the state dict in {where} of '{path}' has a key of type {type(key).__name__}"
                                  f" ({key!r}); state-dict keys are strings")
        if not isinstance(value, torch.Tensor):
            raise ConversionError(f"key '{key}' in {where} of '{path}' is a {type(value).__name__}, not a tensor;"
                                  " is this a state dict?")
    return collections.OrderedDict(obj)


def convert(state, path, rename_legacy, in_channels, drop_classifier, strip_prefixes):
    """name -> ("F32", shape, bytes) or ("I64", [], bytes), plus notes for the user."""
    import torch

    notes = []
    out = collections.OrderedDict()
    renamed = 0
    for key, t in state.items():
        name = key
        for p in strip_prefixes:
            if name.startswith(p):
                name = name[len(p):]
                break
        if rename_legacy:
            m = LEGACY_KEY.match(name)
            if m:
                name = m.group(1) + m.group(2)
                renamed += 1
        if drop_classifier and name.startswith("classifier."):
            continue
        if name in out:
            raise ConversionError(f"keys of '{path}' collide: '{key}' becomes '{name}', which another key already"
                                  " has")
        if name.endswith(COUNTER_SUFFIX):
            if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool or t.numel() != 1:
                raise ConversionError(f"key '{key}' of '{path}' is a batch-norm counter and must be one integer,"
                                      f" found dtype {t.dtype} and shape {list(t.shape)}")
            out[name] = ("I64", [], struct.pack("<q", int(t.item())))
            continue
        if not t.dtype.is_floating_point:
            raise ConversionError(f"key '{key}' of '{path}' has dtype {t.dtype}; only floating-point tensors and"
                                  f" '{COUNTER_SUFFIX}' counters can be converted")
        if t.dim() > MAX_RANK:
            raise ConversionError(f"key '{key}' of '{path}' has shape {list(t.shape)} of rank {t.dim()}; MammoCL"
                                  f" tensors have rank {MAX_RANK} at most")
        if name == CONV0 and in_channels is not None:
            if t.dim() != 4 or t.shape[1] != 3:
                raise ConversionError(f"--in-channels {in_channels}: key '{key}' of '{path}' has shape"
                                      f" {list(t.shape)}; expected (out, 3, kh, kw), an RGB first convolution")
            if in_channels == 1:
                # float64 sum, then one rounding to float32
                t = t.double().sum(dim=1, keepdim=True)
                notes.append(f"'{CONV0}' summed over its 3 RGB input channels: shape now {list(t.shape)}")
        arr = t.detach().to(torch.float32).contiguous().cpu().numpy()
        out[name] = ("F32", list(arr.shape), arr.astype("<f4", copy=False).tobytes())
    if in_channels is not None and CONV0 not in out:
        raise ConversionError(f"--in-channels {in_channels}: '{path}' has no key '{CONV0}' (is it a DenseNet?)")
    if drop_classifier and not any(k.startswith("classifier.") for k in state):
        notes.append("--drop-classifier: the input has no 'classifier.' keys; nothing dropped")
    if rename_legacy:
        notes.append(f"{renamed} legacy key(s) renamed")
        # torch sets the counters pre-1.0 files lack to 0 when it loads them; write them so the result is a
        # complete modern state dict.
        added = 0
        for name in list(out):
            if name.endswith(".running_mean"):
                counter = name[: -len("running_mean")] + COUNTER_SUFFIX
                if counter not in out:
                    out[counter] = ("I64", [], struct.pack("<q", 0))
                    added += 1
        if added:
            notes.append(f"{added} '{COUNTER_SUFFIX}' counter(s) added (0), as torch does for pre-1.0 files")
    else:
        legacy = sum(1 for k in out if LEGACY_KEY.match(k))
        if legacy:
            notes.append(f"{legacy} key(s) use torchvision's legacy names: load with"
                         " load_options{.torchvision_legacy = true}, or convert with --rename-legacy")
    if not out:
        raise ConversionError(f"nothing left to write from '{path}' (every key was dropped)")
    return out, notes


def write_safetensors(tensors, metadata, path):
    """Writes `tensors` (name -> (dtype, shape, bytes)) in key order, atomically."""
    header = {"__metadata__": metadata}
    offset = 0
    for name in sorted(tensors):
        dtype, shape, data = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)  # pad so that the data starts 8-byte aligned
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for name in sorted(tensors):
                f.write(tensors[name][2])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return 8 + len(text) + offset


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input", help="torch .pth file: a state dict, or a checkpoint with a 'state_dict' or 'model' key")
    ap.add_argument("output", help="the .safetensors file to write")
    ap.add_argument("--rename-legacy", action="store_true",
                    help="write modern key names (norm.1 -> norm1, conv.2 -> conv2) and add missing counters")
    ap.add_argument("--in-channels", type=int, choices=(1, 3), default=None,
                    help="1: sum features.conv0.weight over RGB for grey input; 3: keep (checked to be RGB)")
    ap.add_argument("--drop-classifier", action="store_true", help="leave out classifier.* (the ImageNet head)")
    ap.add_argument("--strip-prefix", action="append", default=[], metavar="PREFIX",
                    help="remove PREFIX from keys that start with it (e.g. 'module.' from DataParallel); repeatable")
    ap.add_argument("--trust-pickle", action="store_true",
                    help="allow arbitrary pickled objects in the input (runs its code; only for trusted files)")
    args = ap.parse_args(argv)

    try:
        if os.path.abspath(args.input) == os.path.abspath(args.output):
            raise ConversionError("the output would overwrite the input")
        state = load_state_dict(args.input, args.trust_pickle)
        tensors, notes = convert(state, args.input, args.rename_legacy, args.in_channels, args.drop_classifier,
                                 args.strip_prefix)
        metadata = {"format": "pt", "source": os.path.basename(args.input), "sha256": sha256_of(args.input)}
        size = write_safetensors(tensors, metadata, args.output)
    except ConversionError as e:
        print(f"convert_torchvision_weights: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"convert_torchvision_weights: error: {e}", file=sys.stderr)
        return 1
    counters = sum(1 for v in tensors.values() if v[0] == "I64")
    print(f"wrote '{args.output}': {len(tensors)} tensors ({len(tensors) - counters} F32, {counters} I64 counters),"
          f" {size} bytes; sha256 of input {metadata['sha256']}")
    for n in notes:
        print(f"  note: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
