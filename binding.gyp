{
  "target_defaults": {
    "cflags_cc": ["-O3", "-std=c++17", "-fno-exceptions", "-fvisibility=hidden"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++1y", "-std=gnu++14"],
    "cflags": ["-fPIC"],
    "cflags!": ["-fno-exceptions"]
  },
  "targets": [
    {
      "target_name": "q8_k_avx512vnni",
      "type": "static_library",
      "sources": ["native/kern_avx512vnni.cc"],
      "cflags_cc": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mavx2", "-mfma"]
    },
    {
      "target_name": "q8_k_avxvnni",
      "type": "static_library",
      "sources": ["native/kern_avxvnni.cc"],
      "cflags_cc": ["-mavx2", "-mfma", "-mavxvnni"]
    },
    {
      "target_name": "q8_k_avx2",
      "type": "static_library",
      "sources": ["native/kern_avx2.cc"],
      "cflags_cc": ["-mavx2", "-mfma"]
    },
    {
      "target_name": "q8_native",
      "sources": ["native/addon.cc", "native/kern_scalar.cc"],
      "dependencies": ["q8_k_avx512vnni", "q8_k_avxvnni", "q8_k_avx2"],
      "cflags_cc": ["-fexceptions"],
      "cflags_cc!": ["-fno-exceptions"]
    }
  ]
}
