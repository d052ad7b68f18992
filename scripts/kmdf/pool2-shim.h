/*
 * Force-included by scripts/kmdf-check.sh into wdk-sys' bindgen runs:
 * mingw-w64 10's DDK headers predate ExAllocatePool2 (Windows 10 2004),
 * which wdk-alloc calls, so it and its POOL_FLAGS type are declared here
 * with the types wdm.h gives them. (The POOL_FLAG_* values are not: wdk-sys
 * writes those itself, as bindgen cannot read the WDK's UI64 suffix.)
 */
#pragma once
#include <ntifs.h>

typedef ULONG64 POOL_FLAGS;

NTKERNELAPI PVOID NTAPI ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);
