//! Caffe's log lines as text: numbers printed the way C++ streams print a float
//! (`%g`, six significant digits) and the iteration, lr and test-output lines.

/// Formats like C++ `std::ostream << float` with default settings (`%g`, precision 6):
/// `0.00992565`, `1e-05`, `123457`, `1.23457e+06`, `nan`, `inf`.
/// No crate prints `%g`; it is a dozen lines, so it is written here.
pub fn caffe_float(x: f32) -> String {
    let x = f64::from(x);
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if x == 0.0 {
        return if x.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Round to six significant digits first: the exponent is the rounded one.
    let sci = format!("{x:.5e}");
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_zeros(mantissa), exp.abs())
    } else {
        let decimals = (5 - exp) as usize;
        trim_zeros(&format!("{x:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// `Iteration 100 (12.3 iter/s, 8.13s/100 iters), loss = 0.123`
pub fn iteration_line(
    iter: i32,
    iters_per_s: f32,
    seconds: f32,
    display: i32,
    loss: f32,
) -> String {
    format!(
        "Iteration {iter} ({} iter/s, {}s/{display} iters), loss = {}",
        caffe_float(iters_per_s),
        caffe_float(seconds),
        caffe_float(loss)
    )
}

/// `Iteration 100, lr = 0.00992565`
pub fn lr_line(iter: i32, lr: f32) -> String {
    format!("Iteration {iter}, lr = {}", caffe_float(lr))
}

/// `    Train net output #0: loss = 0.0456 (* 1 = 0.0456 loss)` (`kind` is "Train" or "Test").
pub fn output_line(kind: &str, index: usize, name: &str, value: f32, loss_weight: f32) -> String {
    format!(
        "    {kind} net output #{index}: {}",
        score_line(name, value, loss_weight)
    )
}

/// `loss = 0.0456 (* 1 = 0.0456 loss)`; the weighted part only for outputs with a loss weight.
pub fn score_line(name: &str, value: f32, loss_weight: f32) -> String {
    let weighted = if loss_weight != 0.0 {
        format!(
            " (* {} = {} loss)",
            caffe_float(loss_weight),
            caffe_float(loss_weight * value)
        )
    } else {
        String::new()
    };
    format!("{name} = {}{weighted}", caffe_float(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(x: f32, expect: &str) {
        assert_eq!(caffe_float(x), expect, "formatting {x:e}");
    }

    #[test]
    fn floats_print_like_cpp_streams() {
        check(0.009925646, "0.00992565");
        check(0.0001, "0.0001");
        check(0.00001, "1e-05");
        check(0.0456, "0.0456");
        check(1.0, "1");
        check(123456.7, "123457");
        check(1234567.0, "1.23457e+06");
        check(-2.5, "-2.5");
        check(999999.5, "1e+06");
        check(0.0, "0");
        check(f32::NAN, "nan");
        check(f32::INFINITY, "inf");
    }

    #[test]
    fn lines_read_like_caffe() {
        assert_eq!(lr_line(100, 0.009925646), "Iteration 100, lr = 0.00992565");
        assert_eq!(
            iteration_line(100, 12.3, 8.13, 100, 0.123),
            "Iteration 100 (12.3 iter/s, 8.13s/100 iters), loss = 0.123"
        );
        assert_eq!(
            output_line("Test", 0, "loss", 0.0456, 1.0),
            "    Test net output #0: loss = 0.0456 (* 1 = 0.0456 loss)"
        );
        assert_eq!(
            output_line("Test", 1, "accuracy", 0.98, 0.0),
            "    Test net output #1: accuracy = 0.98"
        );
    }
}
