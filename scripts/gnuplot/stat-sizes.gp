# stat-sizes.gp: the allocation sizes of one trace (or process) from `heaplab stat`, as
# two stacked histograms over the same power-of-two size buckets: how many blocks were
# allocated (top) and how many bytes they asked for (bottom).  Many small blocks and a
# few large ones are both visible that way.
# Preamble variables (besides those of common.gp):
#   datafile     rows: "bucket label" blocks bytes "blocks label" "bytes label" (bytes
#                already in bytes_unit; NaN where a bucket is empty: no bar)
#   chart_title, xlabel
#   nbuckets     number of rows (every bucket between the smallest and largest size)
#   blocks_log, bytes_log       1: logarithmic y axis for that panel
#   blocks_ymin, blocks_ymax, bytes_ymin, bytes_ymax   y ranges
#   blocks_format, bytes_format gnuplot tic formats
#   blocks_tics, bytes_tics     explicit tics "(\"1 KiB\" 1024, ...)", "" for automatic
#   blocks_ylabel, bytes_ylabel axis titles (with units and "log scale" when it is)
#   value_labels 1: print each bar's value above it (when the bars are wide enough)
#   xrotate      degrees to rotate the bucket labels by (0 when they fit)
load tpldir . "/common.gp"

blocks_color = "#0072B2"
bytes_color = "#E69F00"
set style fill solid 0.9 border rgb "#333333"
set boxwidth 0.8 absolute  # x is the bucket index: empty buckets must not widen a bar
set xrange [-0.6:nbuckets - 0.4]
set xtics scale 0
if (xrotate != 0) {
    set xtics rotate by xrotate right
} else {
    set xtics norotate
}
set key off
# Two panels of the same height whatever the image size: margins in pixels, more at the
# bottom and between the panels when the bucket labels are rotated.
rot_px = (xrotate != 0 ? 25.0 : 0.0)
set multiplot layout 2, 1 title chart_title font ",13" \
    margins 100.0 / width, 1.0 - 20.0 / width, (60.0 + rot_px) / height, 1.0 - 72.0 / height \
    spacing 0, (70.0 + rot_px) / height

set title "blocks allocated" font ",11"
set ylabel blocks_ylabel
if (blocks_log) {
    set logscale y
} else {
    unset logscale y
}
set format y blocks_format
if (blocks_tics ne "") {
    set ytics @blocks_tics
} else {
    set ytics autofreq
}
set yrange [blocks_ymin:blocks_ymax]
if (value_labels) {
    plot datafile using 0:2:xtic(1) with boxes lc rgb blocks_color notitle, \
         datafile using 0:2:4 with labels offset 0, 0.6 font ",8" tc rgb "#333333" notitle
} else {
    plot datafile using 0:2:xtic(1) with boxes lc rgb blocks_color notitle
}

set title "bytes requested" font ",11"
set xlabel xlabel
set ylabel bytes_ylabel
if (bytes_log) {
    set logscale y
} else {
    unset logscale y
}
set format y bytes_format
if (bytes_tics ne "") {
    set ytics @bytes_tics
} else {
    set ytics autofreq
}
set yrange [bytes_ymin:bytes_ymax]
if (value_labels) {
    plot datafile using 0:3:xtic(1) with boxes lc rgb bytes_color notitle, \
         datafile using 0:3:5 with labels offset 0, 0.6 font ",8" tc rgb "#333333" notitle
} else {
    plot datafile using 0:3:xtic(1) with boxes lc rgb bytes_color notitle
}
unset multiplot
