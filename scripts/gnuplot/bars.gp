# bars.gp: one grouped bar chart, allocators side by side for each trace.
# Preamble variables (besides those of common.gp):
#   datafile     rows: "trace label", then per allocator four columns: value, low, high,
#                bad (NaN where not measured; low = high = value where no min/max exist;
#                bad = 1 where the allocator broke the malloc contract on that trace)
#   chart_title, ylabel   (the title explains the "!" mark when any bar has one)
#   nalloc       number of allocators; arrays alloc_name[], alloc_color[] (fixed palette,
#                the same allocator has the same colour in every chart)
#   errorbars    1: draw low..high as error bars (min/max of the runs)
#   logscale     1: logarithmic y axis (values span orders of magnitude)
#   yformat      tic format for the y axis (gnuplot format string)
#   refline      y value of a dashed reference line (1.0 when normalised), NaN for none
#   ntraces      number of rows (traces) in datafile
#   npanels, per_panel   many traces are split into npanels stacked panels of at most
#                per_panel traces each, so bars stay wide enough to read
#   ymin, ymax   the y range, the same in every panel (ymin > 0 on a log axis)
#   na_y         y value where "n/a" marks a bar that was not measured (axis bottom)
#   xrotate      degrees to rotate the trace labels by (0 when they fit)
load tpldir . "/common.gp"

set ylabel ylabel
set xlabel "trace"
set style data histograms
if (errorbars) {
    set style histogram errorbars gap 1.5 lw 1.2
    set errorbars lc rgb "#222222"
} else {
    set style histogram clustered gap 1.5
}
set style fill solid 0.9 border rgb "#333333"
set boxwidth 0.95 relative
set key outside right top vertical samplen 2 spacing 1.2 title "allocator" left
if (xrotate != 0) {
    set xtics rotate by xrotate right
} else {
    set xtics norotate
}
set xtics scale 0
if (logscale) {
    set logscale y
    set format y yformat
}
set yrange [ymin:ymax]
if (refline == refline) {
    set arrow 1 from graph 0, first refline to graph 1, first refline nohead dt 2 lw 1.5 lc rgb "#555555" back
}
# Bar i of group g sits at g + (i - 1 - (nalloc - 1) / 2) / (nalloc + gap) (g counts
# from 0 in each panel, as column(0) does under `every`); an
# unmeasured value gets a small "n/a" there instead of a bar that looks like zero, and
# a bar of an allocator that broke the malloc contract gets a red "!" on top: a fast
# allocator that returns bad blocks must not look like a winner.
isnan(x) = (x != x)
barx(i) = column(0) + (i - 1 - (nalloc - 1) / 2.0) / (nalloc + 1.5)
# (The histogram style decides how many columns a bar takes: three with error bars.)
if (errorbars) {
    bars = "using 4*i-2:4*i-1:4*i:xtic(1)"
} else {
    bars = "using 4*i-2:xtic(1)"
}
# Panels share the margins, so that their axes line up; the legend is on the first.
if (npanels > 1) {
    set multiplot layout npanels, 1 title chart_title font ",13"
    set lmargin at screen 95.0 / width
    set rmargin at screen 1.0 - 190.0 / width
    unset xlabel
} else {
    set title chart_title
}
do for [p = 0:npanels - 1] {
    first = p * per_panel
    last = (first + per_panel < ntraces ? first + per_panel : ntraces) - 1
    set xrange [-0.6:per_panel - 0.4]  # the same bar width in every panel
    if (p > 0) {
        set key off
    }
    if (p == npanels - 1 && npanels > 1) {
        set xlabel "trace"
    }
    plot for [i=1:nalloc] datafile every ::first::last @bars title alloc_name[i] lc rgb alloc_color[i], \
         for [i=1:nalloc] datafile every ::first::last using (barx(i)):(na_y):(isnan(column(4*i-2)) ? "n/a" : "") \
             with labels rotate by 90 left offset 0, 0.4 font ",8" tc rgb "#666666" notitle, \
         for [i=1:nalloc] datafile every ::first::last using (barx(i)):(column(4*i)):(column(4*i+1) > 0 ? "!" : "") \
             with labels offset 0, 0.8 font ",14" tc rgb "#CC0000" notitle
}
if (npanels > 1) {
    unset multiplot
}
