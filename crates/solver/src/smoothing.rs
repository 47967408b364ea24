//! Loss smoothing over the last `average_loss` iterations, as Caffe's
//! `Solver::UpdateSmoothedLoss` does it (a running mean, then a ring buffer).

/// The mean of the last `window` losses, updated incrementally like Caffe.
#[derive(Debug, Clone)]
pub struct SmoothedLoss {
    window: usize,
    losses: Vec<f32>,
    smoothed: f32,
    start_iter: i32,
}

impl SmoothedLoss {
    /// A fresh window starting at `start_iter` (Caffe restarts smoothing at each `Step`).
    pub fn new(window: i32, start_iter: i32) -> SmoothedLoss {
        SmoothedLoss {
            window: window.max(1) as usize,
            losses: Vec::new(),
            smoothed: 0.0,
            start_iter,
        }
    }

    /// Adds the loss of iteration `iter` and returns the smoothed loss.
    pub fn push(&mut self, iter: i32, loss: f32) -> f32 {
        if self.losses.len() < self.window {
            self.losses.push(loss);
            let size = self.losses.len() as f32;
            self.smoothed = (self.smoothed * (size - 1.0) + loss) / size;
        } else {
            let idx = (iter - self.start_iter).rem_euclid(self.window as i32) as usize;
            self.smoothed += (loss - self.losses[idx]) / self.window as f32;
            self.losses[idx] = loss;
        }
        self.smoothed
    }

    /// The current smoothed loss (0 before the first push).
    pub fn value(&self) -> f32 {
        self.smoothed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_of_three_averages_the_last_three() {
        let mut s = SmoothedLoss::new(3, 10);
        let got: Vec<f32> = [3.0, 6.0, 9.0, 12.0, 0.0]
            .iter()
            .enumerate()
            .map(|(i, &l)| s.push(10 + i as i32, l))
            .collect();
        assert_eq!(got, [3.0, 4.5, 6.0, 9.0, 7.0]);
    }

    #[test]
    fn window_of_one_is_the_last_loss() {
        let mut s = SmoothedLoss::new(1, 0);
        s.push(0, 2.0);
        assert_eq!(s.push(1, 5.0), 5.0);
        assert_eq!(s.value(), 5.0);
    }
}
