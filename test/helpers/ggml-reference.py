# ggml's own reference quantizers and dequantizers, called through ctypes in node-llama-cpp's
# prebuilt libggml-base.so: the judge for slimtune's port (test/export/gguf-ggml-reference.test.ts).
# usage: ggml-reference.py LIB quantize|dequantize TYPE IN OUT COUNT
#   quantize:   IN holds COUNT float32 values, OUT gets quantize_row_<type>_ref's blocks
#   dequantize: IN holds the blocks of COUNT values, OUT gets dequantize_row_<type>'s float32 values
import ctypes, sys

lib_path, mode, type_name, src, dst, count = sys.argv[1:7]
count = int(count)
lib = ctypes.CDLL(lib_path)
block = {"q4_0": (32, 18), "q4_1": (32, 20), "q5_0": (32, 22), "q5_1": (32, 24), "q8_0": (32, 34),
         "q2_K": (256, 84), "q3_K": (256, 110), "q4_K": (256, 144), "q5_K": (256, 176), "q6_K": (256, 210)}[type_name]
nbytes = count // block[0] * block[1]
data = open(src, "rb").read()
if mode == "quantize":
    x = (ctypes.c_float * count).from_buffer_copy(data)
    y = (ctypes.c_uint8 * nbytes)()
    fn = getattr(lib, "quantize_row_%s_ref" % type_name)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(x, y, count)
    open(dst, "wb").write(bytes(y))
else:
    x = (ctypes.c_uint8 * nbytes).from_buffer_copy(data)
    y = (ctypes.c_float * count)()
    fn = getattr(lib, "dequantize_row_%s" % type_name)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    fn(x, y, count)
    open(dst, "wb").write(bytes(y))
