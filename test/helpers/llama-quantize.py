# llama.cpp's own llama_model_quantize (what the llama-quantize tool runs), called through ctypes in
# node-llama-cpp's prebuilt libllama: the judge for slimtune's presets (test/export/gguf-presets.test.ts).
# usage: llama-quantize.py BINS_DIR IN.gguf OUT.gguf FTYPE
# Only the first two fields of llama_model_quantize_params are set (nthread, ftype: stable since the
# struct appeared); the rest keep llama_model_quantize_default_params(), returned into a buffer larger
# than the struct.
import ctypes, sys

bins, src, dst, ftype = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ctypes.CDLL(bins + "/libggml-base.so", mode=ctypes.RTLD_GLOBAL)
import glob
for so in sorted(glob.glob(bins + "/libggml.*so")):
    ctypes.CDLL(so, mode=ctypes.RTLD_GLOBAL)
llama = ctypes.CDLL(sorted(glob.glob(bins + "/libllama.*so"))[0])

class Params(ctypes.Structure):
    _fields_ = [("nthread", ctypes.c_int32), ("ftype", ctypes.c_int32), ("rest", ctypes.c_uint8 * 1024)]

llama.llama_model_quantize_default_params.restype = Params
params = llama.llama_model_quantize_default_params()
params.nthread = 1
params.ftype = ftype
llama.llama_model_quantize.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(Params)]
llama.llama_model_quantize.restype = ctypes.c_uint32
sys.exit(llama.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params)))
