# common.gp: the terminal and the look shared by every heaplab chart.  Loaded first by
# each chart template.  `heaplab plot` sets these variables in a generated preamble:
#   fmt      "png" (pngcairo) or "svg"
#   width, height   the image size in pixels
#   outfile  where the image goes
# Text is noenhanced: trace and allocator names are printed as given (an underscore in
# a name must not become a subscript).
if (fmt eq "svg") {
    set terminal svg size width, height dynamic noenhanced font "Sans,12" background rgb "white"
} else {
    set terminal pngcairo size width, height noenhanced font "Sans,10" background rgb "white"
}
set output outfile
set encoding utf8
set border 3 lc rgb "#444444"
set tics nomirror out
set grid ytics lc rgb "#dddddd" lw 1 dt 1
set key noenhanced
set datafile missing "NaN"
set title font ",13"
