"""Old-film support: what archive material needs beyond a modern clip.

Each module is one property of old films and what videofix does about it:

- `color`: black-and-white, sepia and tinted shots are detected per shot (chroma that is a
  function of luma alone); their faces are pasted in luma-only mode, so a restorer trained
  on colour faces never brings colour the film does not have.
- `grain`: the film grain around each face is measured and matching, seeded,
  temporally varying grain is put back on the (clean) restored face.
- `interlace`: interlaced transfers are detected (stream field order, frame flags, a comb
  test on the picture) and deinterlaced with libavfilter's bwdif, one frame out per
  frame in, before detection and for the output.
- `upscale`: whole-frame upscaling through a pluggable upscaler (Real-ESRGAN x2plus when
  its file is present, Lanczos otherwise) so small faces are pasted at a higher resolution;
  `rrdbnet` is the Real-ESRGAN network.
- `duplicates`: repeated frames of slow films in faster containers are found in pass 1;
  pass 2 restores each run once and repeats the result exactly.
- `plan`: `FilmPlan` ties these to the runners (what the local and Ray runners call);
  `paste`: `FilmPaster`, the face paste with luma-only mode and grain.
"""
