// Fuzzing the hf-folder reader: see fuzz.ts for the property and bench/fuzz/readers.mjs for the files.
import { fuzzReader } from "./fuzz.js";

fuzzReader("hf-folder", 200);
