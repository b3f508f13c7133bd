// Fuzzing the llama-gguf reader: see fuzz.ts for the property and bench/fuzz/readers.mjs for the files.
import { fuzzReader } from "./fuzz.js";

fuzzReader("llama-gguf", 200);
