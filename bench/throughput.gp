# throughput.gp: aggregate tokens/s vs concurrent streams, shimmy and llama-server, one panel per
# model. Data: bench/results/throughput.dat (written by bench.mjs), one block per model.
# usage: gnuplot -e "dat='...'; out='...png'; n=2; titles='model-a model-b'" bench/throughput.gp
set terminal pngcairo size (n * 520), 420 font "sans,10"
set output out
set multiplot layout 1, n title "Aggregate decode throughput vs concurrent streams (higher is better)"
set xlabel "concurrent streams"
set ylabel "tokens/s (all streams)"
set xtics ("1" 1, "4" 4, "8" 8)
set xrange [0.5:8.5]
set yrange [0:*]
set grid ytics
set key top left
do for [i = 0:n - 1] {
    set title word(titles, i + 1) noenhanced
    plot dat index i using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "shimmy", \
         dat index i using 1:3 with linespoints lw 2 pt 5 lc rgb "#d62728" title "llama-server"
}
unset multiplot
